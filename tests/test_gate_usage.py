"""Only the gates open checkpoints and images and write files: a scan of the package's syntax trees.

Every checkpoint is read by ``oisr_basicsr.checkpoints`` (io.py and weights.py: no code runs, only finite
floating-point weights pass), every image by ``oisr_basicsr.images`` (the size from the header before decoding, the
memory check, damaged and too small files named), and every file is written through ``oisr_basicsr.outputs`` (never
onto an input, never outside the folder named, atomically, with umask permissions). A module that calls
``torch.load``, ``cv2.imread`` or ``open(path, 'w')`` itself re-opens a hole the gates closed; this test names it.

A write is allowed anywhere when it goes into a file object the gate opened (``with atomic_output(path) as file:
torch.save(obj, file)``) or into memory (``io.BytesIO``). To put another kind of input behind a gate, add a
:class:`Gate` to :data:`GATES`.
"""

import ast
import re
from dataclasses import dataclass

import pytest
from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / 'oisr_basicsr'
# Calls that hand out a file object the gate opened, or a buffer in memory: writes into what they return are fine.
GATE_OPENERS = {'atomic_output', 'BytesIO', 'StringIO'}
WRITE_MODE = re.compile(r'[wax+]')


@dataclass(frozen=True)
class Gate:
    """One kind of file access that only some modules may do.

    Args:
        name: What the calls do.
        calls: Fully qualified names of the calls (``torch.load``), after the module's imports are resolved.
        methods: Method names that do it on any object (``write_text``).
        modules: The modules allowed to make the calls, relative to the repository, each with the reason.
    """

    name: str
    calls: frozenset[str]
    methods: frozenset[str]
    modules: dict[str, str]


GATES = (
    Gate('checkpoint read',
         frozenset({'torch.load', 'safetensors.safe_open', 'safetensors.torch.load_file', 'safetensors.torch.load',
                    'pickle.load', 'pickle.loads'}),
         frozenset(),
         {'oisr_basicsr/checkpoints/io.py': 'the safe loader (weights_only, safetensors) of the weights gate'}),
    Gate('image read',
         frozenset({'cv2.imread', 'cv2.imreadmulti', 'cv2.imdecode', 'cv2.imdecodemulti', 'PIL.Image.open',
                    'imageio.imread', 'imageio.v2.imread', 'imageio.v3.imread', 'basicsr.utils.imfrombytes',
                    'basicsr.utils.img_util.imfrombytes'}),
         frozenset(),
         {'oisr_basicsr/images.py': 'the image gate itself',
          'oisr_basicsr/data/continuous_scale_dataset.py':
              'a BasicSR-style dataset: it decodes the bytes that BasicSR\'s FileClient reads from a folder or an '
              'LMDB with BasicSR\'s imfrombytes, as BasicSR\'s own datasets do; the start-up checks read the headers '
              '(or meta_info.txt) of its folders first, and decode its validation and test images'}),
    Gate('file write',
         frozenset({'torch.save', 'numpy.save', 'numpy.savez', 'numpy.savez_compressed', 'numpy.savetxt',
                    'cv2.imwrite', 'shutil.copy', 'shutil.copy2', 'shutil.copyfile', 'shutil.copytree', 'shutil.move',
                    'os.replace', 'os.rename', 'os.link', 'tempfile.mkstemp', 'tempfile.NamedTemporaryFile',
                    'onnx.save', 'onnx.save_model', 'safetensors.torch.save_file', 'torch.onnx.export',
                    'imageio.imwrite'}),
         frozenset({'write_text', 'write_bytes', 'savefig', 'save'}),
         {'oisr_basicsr/outputs.py': 'the outputs gate itself',
          'oisr_basicsr/run_lock.py': 'the lock file is held open for flock and never replaced, so it is no output',
          'oisr_basicsr/basicsr_sdist.py': 'runs before the package\'s dependencies are installed (standard library '
                                           'only), so it cannot import the outputs gate'}),
)


def _imports(tree: ast.Module) -> dict[str, str]:
    """Local name -> the fully qualified name it was imported as."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                # ``import a.b`` binds ``a``; ``import a.b as c`` binds ``c`` to ``a.b``.
                top = alias.name.split('.')[0]
                names[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                names[alias.asname or alias.name] = f'{node.module}.{alias.name}'
    return names


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f'{base}.{node.attr}'
    return None


def _qualified(call: ast.Call, imports: dict[str, str]) -> str | None:
    dotted = _dotted(call.func)
    if dotted is None:
        return None
    head, _, rest = dotted.partition('.')
    head = imports.get(head, head)
    return f'{head}.{rest}' if rest else head


def _gate_files(tree: ast.Module, imports: dict[str, str]) -> set[str]:
    """Names bound to a gate's file object (``with atomic_output(path) as file``) or to a buffer in memory."""
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.With):
            for item in node.items:
                opener = _qualified(item.context_expr, imports) if isinstance(item.context_expr, ast.Call) else None
                if opener is not None and isinstance(item.optional_vars, ast.Name) and \
                        opener.rsplit('.', 1)[-1] in GATE_OPENERS:
                    bound.add(item.optional_vars.id)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            if (_qualified(node.value, imports) or '').rsplit('.', 1)[-1] in GATE_OPENERS:
                bound.update(target.id for target in node.targets if isinstance(target, ast.Name))
    return bound


def _into_gate_file(call: ast.Call, gate_files: set[str]) -> bool:
    values = [*call.args, *(keyword.value for keyword in call.keywords)]
    return any(isinstance(value, ast.Name) and value.id in gate_files for value in values)


def _opens_for_writing(call: ast.Call, name: str | None, imports: dict[str, str]) -> bool:
    """``open(path, 'w')``, ``gzip.open(path, 'wb')``, ``path.open('wb')`` or ``os.open(path, os.O_WRONLY ...)``;
    a mode that is not a constant counts as writing (it cannot be shown to be a read)."""
    if name == 'os.open':
        flags = ast.unparse(call.args[1]) if len(call.args) > 1 else ''
        return any(flag in flags for flag in ('O_WRONLY', 'O_RDWR', 'O_CREAT', 'O_APPEND', 'O_TRUNC'))
    if name != 'open' and not (isinstance(call.func, ast.Attribute) and call.func.attr == 'open'):
        return False
    # open() and a module's open(path, mode) take the mode second; an object's (Path.open) first.
    of_module = name == 'open' or (_dotted(call.func) or '').split('.')[0] in imports
    position = 1 if of_module else 0
    mode = call.args[position] if len(call.args) > position else None
    mode = next((keyword.value for keyword in call.keywords if keyword.arg == 'mode'), mode)
    if mode is None:
        return False
    return not isinstance(mode, ast.Constant) or bool(WRITE_MODE.search(str(mode.value)))


def violations(source: str, module: str) -> list[str]:
    """``module:line: <gate>: <call>`` for every call in ``source`` that only a gate may make."""
    tree = ast.parse(source)
    imports = _imports(tree)
    gate_files = _gate_files(tree, imports)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _qualified(node, imports)
        method = node.func.attr if isinstance(node.func, ast.Attribute) else None
        for gate in GATES:
            if module in gate.modules:
                continue
            hit = name in gate.calls or (method in gate.methods and name not in gate.calls)
            if gate.name == 'file write':
                hit = hit or _opens_for_writing(node, name, imports)
                if hit and (_into_gate_file(node, gate_files) or _writes_nowhere(node, name)):
                    hit = False
            if hit:
                found.append(f'{module}:{node.lineno}: {gate.name}: {ast.unparse(node.func)}')
    return found


def _writes_nowhere(call: ast.Call, name: str | None) -> bool:
    # torch.onnx.export without a destination returns the model in memory.
    if name != 'torch.onnx.export':
        return False
    destination = next((keyword.value for keyword in call.keywords if keyword.arg == 'f'),
                       call.args[2] if len(call.args) > 2 else None)
    return destination is None or (isinstance(destination, ast.Constant) and destination.value is None)


def test_only_the_gates_open_checkpoints_and_write_files():
    found = [violation for path in sorted(PACKAGE.rglob('*.py'))
             for violation in violations(path.read_text(encoding='utf-8'), path.relative_to(REPO_ROOT).as_posix())]
    assert found == [], 'read checkpoints with oisr_basicsr.checkpoints.weights.load_weights, images with ' \
                        'oisr_basicsr.images.read_image and write files with oisr_basicsr.outputs (atomic_output, ' \
                        'write_text, write_image):\n' + '\n'.join(found)


def test_every_allowed_module_exists():
    for gate in GATES:
        for module in gate.modules:
            assert (REPO_ROOT / module).is_file(), (gate.name, module)


@pytest.mark.parametrize('source,expected', [
    ('import torch\ntorch.load(p)\n', ['checkpoint read: torch.load']),
    ('from safetensors.torch import load_file as lf\nlf(p)\n', ['checkpoint read: lf']),
    ('from safetensors import safe_open\nwith safe_open(p, "pt") as f: pass\n', ['checkpoint read: safe_open']),
    ('open(p, "wb").write(b"")\n', ['file write: open']),
    ('open(p, mode="a")\n', ['file write: open']),
    ('open(p, m)\n', ['file write: open']),
    ('from pathlib import Path\nPath(p).open("w")\n', ['file write: Path(p).open']),
    ('import os\nos.open(p, os.O_WRONLY | os.O_CREAT)\n', ['file write: os.open']),
    ('import cv2 as c\nc.imwrite(p, img)\n', ['file write: c.imwrite']),
    ('import numpy as np\nnp.save(p, a)\n', ['file write: np.save']),
    ('p.write_text("x")\n', ['file write: p.write_text']),
    ('fig.savefig("plot.png")\n', ['file write: fig.savefig']),
    ('import torch\ntorch.onnx.export(net, (x, ), "m.onnx")\n', ['file write: torch.onnx.export']),
    ('import shutil\nshutil.copy(a, b)\n', ['file write: shutil.copy']),
    ('import cv2\nimg = cv2.imread(p, cv2.IMREAD_UNCHANGED)\n', ['image read: cv2.imread']),
    ('import cv2\nimport numpy as np\ncv2.imdecode(np.fromfile(p, np.uint8), 1)\n', ['image read: cv2.imdecode']),
    ('from PIL import Image\nwith Image.open(p) as image: pass\n', ['image read: Image.open']),
    ('import PIL.Image\nPIL.Image.open(p)\n', ['image read: PIL.Image.open']),
    ('import imageio.v3 as iio\niio.imread(p)\n', ['image read: iio.imread']),
    ('from basicsr.utils import imfrombytes\nimfrombytes(data, float32=True)\n', ['image read: imfrombytes']),
    # What the gates allow: reads, writes into a file object of atomic_output or into memory.
    ('open(p)\nopen(p, "rb")\nfrom pathlib import Path\nPath(p).open("rb")\n', []),
    ('import torch\nfrom oisr_basicsr.outputs import atomic_output\nwith atomic_output(p) as f:\n'
     '    torch.save(obj, f)\n    fig.savefig(f, format="png")\n', []),
    ('import io, torch\nbuffer = io.BytesIO()\ntorch.onnx.export(net, (x, ), buffer)\n', []),
    ('import torch\nmodel = torch.onnx.export(net, (x, ), dynamo=True)\n', []),
])
def test_the_scan_finds_what_it_must(source, expected):
    assert [line.split(': ', 1)[1] for line in violations(source, 'oisr_basicsr/planted.py')] == expected
