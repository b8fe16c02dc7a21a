"""OISR in spandrel, the model loader of chaiNNer, ComfyUI and many scripts.

``import oisr_basicsr`` adds :class:`OISRArch` to spandrel's main registry when spandrel is installed
(``pip install oisr-basicsr[spandrel]``), so that ::

    import oisr_basicsr
    import spandrel
    model = spandrel.ModelLoader().load_from_file('net_g_latest.pth')   # or .safetensors

loads any checkpoint of a ``type: OISR`` network: BasicSR's ``{'params': ..., 'params_ema': ...}``
(spandrel takes ``params_ema`` when present), a bare state dict, or a ``.safetensors`` file written by
this package. Every hyper-parameter is read from the names and shapes of the tensors:

- ``num_in_ch`` / ``num_feat`` from ``conv_first``, ``num_out_ch`` from ``conv_last``;
- ``num_block`` from the number of ``body.blocks.<i>``;
- ``g_variant`` from the layers of one step function (PReLUs hold vectors, convolutions 4-d kernels;
  ``edsr`` is the only one without a parameter at position 1);
- ``scheme`` from the block's scalars: ``scale1`` ... for the paper's blocks (4 of them and four steps for
  ``lf``, 1 for ``rk2``, 5 for ``rk3``), ``a<i><j>`` / ``b<i>`` for a Butcher tableau, whose non-zero entries
  and stage count identify it up to tableaus sharing both (``heun`` / ``ralston``, ``kutta3`` / ``ssprk3``):
  among those, the one whose entries are nearest to the stored values is named. The stored values are loaded,
  so the network computes the trained function whichever name is given;
- ``upscale`` from the upsampler: one convolution to ``9 num_feat`` channels is x3, ``n`` convolutions to
  ``4 num_feat`` channels are x2^n;
- ``img_range`` is not stored: it is taken as 1 when the mean-shift biases (``img_range`` times the mean)
  all lie in [-1, 1], else 255, and ``rgb_mean`` follows from the bias.

The coefficients are loaded as parameters (``learnable_coefficients`` cannot be seen in a state dict and
does not change the function).
"""

import re

from spandrel import (
    MAIN_REGISTRY,
    Architecture,
    ArchRegistry,
    ArchSupport,
    ImageModelDescriptor,
    SizeRequirements,
    StateDict,
)
from spandrel.util import get_seq_len

from .archs.ode_schemes import BUTCHER_TABLEAUS, G_VARIANTS
from .archs.oisr_arch import OISR, PAPER_MODELS
from .checkpoints.io import check_finite, group_by_param_key
from .checkpoints.weights import PARAM_KEYS, check_weights, state_dict_of
from .errors import CheckpointError

REQUIRED_KEYS = ('sub_mean.weight', 'sub_mean.bias', 'conv_first.weight', 'body.blocks.0.steps.0.0.weight',
                 'body.conv_after_body.weight', 'upsample.0.weight', 'conv_last.weight', 'add_mean.bias')
# The paper's blocks: their scalars and number of step functions.
PAPER_BLOCKS = {'lf': (('scale1', 'scale2', 'scale3', 'scale4'), 4), 'rk2': (('scale1', ), 2),
                'rk3': (('scale1', 'scale2', 'scale3', 'scale4', 'scale5'), 3)}
# The layers of a step function that hold parameters: their positions, and whether each is a PReLU.
G_LAYOUTS = {'v1': {0: False, 1: True}, 'v2': {0: True, 1: False}, 'v3': {0: True, 1: False, 2: True, 3: False},
             'edsr': {0: False, 2: False}}
# How the state dict spandrel passes is named in messages (spandrel does not pass the file).
SOURCE = 'the state dict given to spandrel'


def _unwrap(state_dict: StateDict) -> StateDict:
    """The OISR weights in a state dict spandrel has canonicalised, by the package's reader of weights. An EMA run
    saved as one safetensors file stores both weight sets flat as ``<param_key>.<name>``, which spandrel's
    canonicalisation leaves; they are grouped first. EMA weights are taken when present, as spandrel does."""
    keys = [key for key in PARAM_KEYS if f'{key}.conv_first.weight' in state_dict]
    return state_dict_of(group_by_param_key(state_dict, keys) if keys else state_dict, SOURCE, 'params_ema')[0]


def _tableau_names(name: str) -> set[str]:
    tableau = BUTCHER_TABLEAUS[name]
    names = {f'a{i + 1}{j + 1}' for i, row in enumerate(tableau.a) for j, value in enumerate(row) if value != 0}
    return names | {f'b{i + 1}' for i, value in enumerate(tableau.b) if value != 0}


def _tableau_value(name: str, coefficient: str) -> float:
    tableau = BUTCHER_TABLEAUS[name]
    if coefficient.startswith('a'):
        return tableau.a[int(coefficient[1]) - 1][int(coefficient[2]) - 1]
    return tableau.b[int(coefficient[1]) - 1]


def detect_scheme(state_dict: StateDict) -> str | None:
    """The block scheme of an OISR state dict, from block 0's scalars and step count; ``None`` if none fits."""
    prefix = 'body.blocks.0.'
    scalars = {key[len(prefix):] for key in state_dict if re.fullmatch(rf'{re.escape(prefix)}(scale\d|a\d\d|b\d)', key)}
    num_steps = get_seq_len(state_dict, 'body.blocks.0.steps')
    for scheme, (names, steps) in PAPER_BLOCKS.items():
        if scalars == set(names) and num_steps == steps:
            return scheme
    candidates = [name for name, tableau in BUTCHER_TABLEAUS.items()
                  if tableau.num_stages == num_steps and _tableau_names(name) == scalars]
    if not candidates:
        return None

    def distance(name: str) -> float:
        return sum((float(state_dict[prefix + c].float().mean()) - _tableau_value(name, c))**2 for c in scalars)

    return min(candidates, key=distance)


def detect_g_variant(state_dict: StateDict) -> str | None:
    """The step function G of an OISR state dict, from the parameter shapes of its first step; ``None`` if none fits."""
    prefix = 'body.blocks.0.steps.0.'
    layers = {int(key[len(prefix):].split('.')[0]): state_dict[key].dim() == 1
              for key in state_dict if key.startswith(prefix) and key.endswith('.weight')}
    return next((variant for variant in G_VARIANTS if G_LAYOUTS[variant] == layers), None)


def detect_upscale(state_dict: StateDict, num_feat: int) -> int | None:
    """The upscaling factor from the upsampler's convolutions; ``None`` if they fit no OISR upsampler."""
    convs = [state_dict[key] for key in sorted(state_dict) if re.fullmatch(r'upsample\.\d+\.weight', key)]
    if len(convs) == 1 and convs[0].shape[0] == 9 * num_feat:
        return 3
    if convs and all(conv.shape[0] == 4 * num_feat for conv in convs):
        return 2**len(convs)
    return None


def detect_options(state_dict: StateDict) -> dict | None:
    """The ``network_g`` arguments of :class:`OISR` that built ``state_dict``, or ``None`` if it is not OISR's."""
    try:
        state_dict = _unwrap(state_dict)
    except CheckpointError:  # spandrel asks every architecture; an unreadable dict is simply not OISR's
        return None
    if not all(key in state_dict for key in REQUIRED_KEYS):
        return None
    num_feat, num_in_ch = state_dict['conv_first.weight'].shape[:2]
    scheme, g_variant = detect_scheme(state_dict), detect_g_variant(state_dict)
    upscale = detect_upscale(state_dict, num_feat)
    if scheme is None or g_variant is None or upscale is None:
        return None
    bias = state_dict['add_mean.bias'].float()
    img_range = 1.0 if bool((bias.abs() <= 1).all()) else 255.0
    return {
        'num_in_ch': num_in_ch,
        'num_out_ch': state_dict['conv_last.weight'].shape[0],
        'num_feat': num_feat,
        'num_block': get_seq_len(state_dict, 'body.blocks'),
        'upscale': upscale,
        'scheme': scheme,
        'g_variant': g_variant,
        'img_range': img_range,
        'rgb_mean': tuple(float(v) for v in bias / img_range),
    }


def paper_model_name(options: dict) -> str | None:
    """``OISR-RK3`` etc. when ``options`` are one of the paper's models, else ``None``."""
    return next((f'OISR-{name}' for name, arch in PAPER_MODELS.items()
                 if all(options[key] == value for key, value in arch.items())), None)


class OISRArch(Architecture[OISR]):
    """spandrel's description of :class:`~oisr_basicsr.archs.oisr_arch.OISR`."""

    def __init__(self) -> None:
        super().__init__(id='OISR', name='OISR', detect=lambda state_dict: detect_options(state_dict) is not None)

    def load(self, state_dict: StateDict) -> ImageModelDescriptor[OISR]:
        options = detect_options(state_dict)
        if options is None:
            raise ValueError('not the state dict of an OISR network')
        # Checked as every command checks weights: int8 or NaN weights would load without a word.
        state_dict = check_finite(check_weights(_unwrap(state_dict), SOURCE), SOURCE)
        model = OISR(**options)
        model.load_state_dict(state_dict)
        tags = [options['scheme'], f'G-{options["g_variant"]}', f'{options["num_feat"]}nf', f'{options["num_block"]}nb']
        paper_name = paper_model_name(options)
        if paper_name:
            tags.insert(0, paper_name)
        return ImageModelDescriptor(
            model,
            state_dict,
            architecture=self,
            purpose='SR',
            tags=tags,
            supports_half=True,
            supports_bfloat16=True,
            scale=options['upscale'],
            input_channels=options['num_in_ch'],
            output_channels=options['num_out_ch'],
            # Convolutions and pixel shuffles only: any size works.
            size_requirements=SizeRequirements(),
        )


def install(registry: ArchRegistry = MAIN_REGISTRY) -> list[ArchSupport]:
    """Add :class:`OISRArch` to ``registry`` (spandrel's main registry by default); safe to call again."""
    return registry.add(ArchSupport.from_architecture(OISRArch()), ignore_duplicates=True)
