from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).parent
version = {}
exec((ROOT / 'oisr_basicsr' / 'version.py').read_text(), version)


class BuildWithOptionTemplates(build_py):
    """The standard build, plus the repository's ``options/*.yml`` copied into the built package's ``templates/``:
    the files ``oisr options list / copy`` serve after a pip install, stored once in git (in ``options/``)."""

    def run(self) -> None:
        super().run()
        # An editable install builds nothing to copy into: its lookup reads the checkout's options/ directly.
        if self.editable_mode:
            return
        option_files = sorted((ROOT / 'options').glob('*.yml'))
        if not option_files:  # an sdist made without MANIFEST.in, say: a package without templates is broken
            raise FileNotFoundError(f'no option files in {ROOT / "options"}')
        templates = Path(self.build_lib) / 'oisr_basicsr' / 'templates'
        for option_file in option_files:
            self.copy_file(str(option_file), str(templates / option_file.name))


setup(
    name='oisr-basicsr',
    version=version['__version__'],
    description='ODE-based super-resolution (OISR, NODE-SR) as a BasicSR plugin',
    long_description=(ROOT / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    # Python 3.13 and later need BasicSR built by scripts/install_basicsr.py first (README, set-up). The
    # classifiers name the versions that CI or a recorded check (docs/python_versions.md) has run.
    python_requires='>=3.10',
    classifiers=[
        'Programming Language :: Python :: 3',
        'Programming Language :: Python :: 3.11',
        'Programming Language :: Python :: 3.12',
        'Programming Language :: Python :: 3.13',
        'Programming Language :: Python :: 3.14',
        'Topic :: Scientific/Engineering :: Image Processing',
    ],
    packages=find_packages(include=['oisr_basicsr', 'oisr_basicsr.*', 'oisr_cli', 'oisr_cli.*']),
    # The JSON Schema a copied template names for editors (written by scripts/generate_option_docs.py, kept equal
    # by a test).
    package_data={'oisr_basicsr': ['options/*.schema.json']},
    # The option templates of `oisr options list / copy`: options/*.yml, copied in at build time.
    cmdclass={'build_py': BuildWithOptionTemplates},
    install_requires=[
        'basicsr==1.4.2',
        'torch>=2.1',
        'torchvision>=0.16',
        'torchdiffeq>=0.2.5',
        'lmdb',
        'opencv-python',
        'pyyaml',
        'tensorboard',
        'scikit-image',
        'numpy',
        # safetensors: checkpoints as a JSON header plus raw tensor bytes, read without unpickling anything; the
        # format every tool outside PyTorch training code (spandrel, chaiNNer, ComfyUI) reads.
        'safetensors>=0.4',
        # The option schema: typed models with the exact location of every error and a JSON schema for
        # docs/options.md, which hand-written checks of a few hundred keys would each have to reimplement.
        'pydantic>=2',
        # basicsr.archs.arch_util imports distutils, which Python 3.12 ships only through setuptools.
        'setuptools',
    ],
    extras_require={
        # torch.onnx.export(dynamo=True) needs onnxscript; onnxruntime runs and verifies the exported graph.
        'export': ['onnx>=1.15', 'onnxscript', 'onnxruntime'],
        'plot': ['matplotlib'],
        # spandrel: the loader chaiNNer / ComfyUI use; OISR registers its architecture there (oisr_basicsr.spandrel).
        'spandrel': ['spandrel>=0.4,<0.5'],
        # hypothesis: the seeded property-based test that mutates every shipped option file; jsonschema: the test
        # that every shipped template validates against the options' JSON Schema.
        'test': ['pytest>=7', 'ruff', 'hypothesis', 'onnx>=1.15', 'onnxscript', 'onnxruntime', 'matplotlib',
                 'spandrel>=0.4,<0.5', 'jsonschema'],
    },
    entry_points={
        'console_scripts': [
            # One command for every tool; a package of its own so that `oisr --help` does not import torch.
            'oisr=oisr_cli.main:main',
            # The earlier names, kept as aliases of `oisr train` / `oisr test` / `oisr infer` / `oisr quickstart`.
            'oisr-train=oisr_cli.commands.train:main',
            'oisr-test=oisr_cli.commands.test:main',
            'oisr-infer=oisr_cli.commands.infer:main',
            'oisr-quickstart=oisr_cli.commands.quickstart:main',
        ],
    },
)
