"""What the model of an option file can do, read from its registered class, so that no caller compares
``model_type`` with a class name and option checking never imports a model.

A model class states a capability with a class attribute: ``serves_any_scale`` (inference super-resolves by
any real factor >= 1 through :class:`~oisr_basicsr.models.nodesr.NODESR` instead of running ``network_g`` at its
one scale) and ``reads_ode_block`` (the model solves an ODE configured by the ``ode:`` block).
"""

from collections.abc import Mapping

from basicsr.utils.registry import MODEL_REGISTRY


def model_class(opt: Mapping) -> type | None:
    """The registered class of an option dict's ``model_type``; None when it names no registered model."""
    model_type = opt.get('model_type')
    if not isinstance(model_type, str) or model_type not in MODEL_REGISTRY:
        return None
    return MODEL_REGISTRY.get(model_type)


def serves_any_scale(opt: Mapping) -> bool:
    """Whether the model of ``opt`` super-resolves by any real factor >= 1 (NODE-SR), rather than by the one
    scale of its network."""
    return bool(getattr(model_class(opt), 'serves_any_scale', False))


def reads_ode_block(opt: Mapping) -> bool:
    """Whether the model of ``opt`` reads the ``ode:`` block."""
    return bool(getattr(model_class(opt), 'reads_ode_block', False))


def any_scale_models() -> list[str]:
    """The registered model types that serve any scale, sorted (for messages)."""
    return sorted(name for name, cls in MODEL_REGISTRY if getattr(cls, 'serves_any_scale', False))
