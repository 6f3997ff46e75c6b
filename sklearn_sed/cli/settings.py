"""``--set KEY=VALUE``: parsed, routed to the steps, validated before any work.

Literals, allow-listed parameter objects and named networks only.
"""

import ast

from sklearn_sed.cli._common import CLIError

#: Parameters that hold Python objects and cannot be written on a command line.
NOT_SETTABLE = ("callbacks", "memory")


def literal(key, value):
    """Parse a ``--set`` value.

    A Python literal, a parameter object such as ``MeanTeacher(consistency=1)``
    (literal arguments only, from an allow-list), or the text itself.
    """
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError):
        pass
    except (RecursionError, MemoryError):
        raise CLIError(f"--set {key}=...: the value is too deeply nested.") from None
    try:
        node = ast.parse(value.strip(), mode="eval").body
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return value
    from sklearn_sed.io import parameter_object_classes

    objects = parameter_object_classes()
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in objects
    ):
        return value
    if node.args:
        raise CLIError(
            f"--set {key}={value}: give {node.func.id}'s fields by name, e.g. "
            f"{node.func.id}(field=...)."
        )
    try:
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
        return objects[node.func.id](**kwargs)
    except (ValueError, TypeError) as exc:
        raise CLIError(f"--set {key}={value}: {exc}") from None


def network(key, value):
    """Parse ``--set module=crnn(n_filters=32)``: a named network, literal fields.

    Only the networks of :data:`sklearn_sed.networks.NETWORKS` can be named
    (by name or class name), with literal keyword fields: the same
    allow-list safety as the parameter objects.
    """
    from sklearn_sed.networks.registry import NETWORKS, network_factory

    names = ", ".join(f"{n}(...)" for n in NETWORKS)
    try:
        node = ast.parse(value.strip(), mode="eval").body
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        node = None
    if isinstance(node, ast.Name):
        node = ast.Call(func=node, args=[], keywords=[])
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        raise CLIError(
            f"--set {key}={value}: give a network by name with literal fields, "
            f"one of {names}, e.g. --set module=crnn(n_filters=32); a network "
            "of your own needs the Python API."
        )
    known = {n.lower() for n in NETWORKS} | {
        c.__name__.lower() for c in NETWORKS.values()
    }
    if node.func.id.lower() not in known:
        raise CLIError(
            f"--set {key}={value}: network must be one of {sorted(NETWORKS)}. "
            f"Got {node.func.id!r} instead."
        )
    if node.args or any(kw.arg is None for kw in node.keywords):
        raise CLIError(
            f"--set {key}={value}: give the network's fields by name, e.g. "
            f"{node.func.id}(n_filters=32)."
        )
    try:
        fields = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
        return network_factory(node.func.id, **fields)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError) as exc:
        raise CLIError(f"--set {key}={value}: {exc}") from None


def parse_set(pairs):
    """Return ``--set KEY=VALUE`` pairs as a dict of parsed values.

    Raises :class:`CLIError` for a malformed pair, a parameter that holds
    Python objects, an unknown optimizer or network, or a value that cannot
    be parsed safely.
    """
    import torch

    from sklearn_sed.training.build import OPTIMIZERS as _OPTIMIZERS

    params = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CLIError(f"--set must be key=value. Got {pair!r} instead.")
        bare = key.rpartition("__")[2]
        if bare in NOT_SETTABLE:
            raise CLIError(
                f"--set {key}=...: {bare} holds Python objects and cannot be set "
                "from the command line; use the Python API."
            )
        if bare == "module":
            params[key] = network(key, value)
            continue
        if bare == "optimizer":
            name = value.strip().removeprefix("torch.optim.")
            name = _OPTIMIZERS.get(name.lower(), name)
            if not isinstance(getattr(torch.optim, name, None), type):
                raise CLIError(
                    f"--set {key}={value}: unknown optimizer; use one of "
                    f"{sorted(_OPTIMIZERS)} or a torch.optim class name."
                )
            params[key] = getattr(torch.optim, name)
            continue
        params[key] = literal(key, value)
    return params


def apply_set(pipe, params):
    """Route ``--set`` keys to the steps that own them, then validate them.

    A name goes to every step that has it (``duration`` and ``sr`` are
    shared by the extractor and the detector, and must agree), or to the
    transformers of a step that has them (the log-mel extractor and the
    embedding of ``FusedFeatures``), a field of a parameter object too
    (``decoder__threshold``); a step-prefixed name (``pseudolabelsed__lr``)
    is used as it is.
    """
    from sklearn_sed.pipeline import step_parts

    valid = pipe.get_params()
    routed, typed = {}, {}  # routed key: value, and the key as typed
    for key, value in params.items():
        owners = []
        for s, step in pipe.steps:
            # The step's own, else those of the transformers it holds.
            names = [f"{s}__{prefix}{key}" for prefix, _ in step_parts(step)]
            found = [n for n in names if n in valid]
            owners += found[:1] if names[0] in valid else found
        if key in valid:
            owners = [key]
        if not owners:
            refuse_field_of_none(pipe, key, valid)
            raise CLIError(
                f"--set {key}=...: unknown parameter. Parameters of PseudoLabelSED "
                "and LogMelExtractor are accepted, e.g. --set max_epochs=5, and "
                "fields of its parameter objects, e.g. --set decoder__threshold=0.4."
            )
        routed.update(dict.fromkeys(owners, value))
        typed.update(dict.fromkeys(owners, key))
    for key, value in routed.items():
        fields = [k for k in routed if k.startswith(f"{key}__")]
        if fields and not hasattr(value, "set_params"):
            raise CLIError(
                f"--set {typed[key]}={value!r} is not a parameter object, but "
                f"--set {typed[fields[0]]}=... sets a field of one: the two "
                "settings conflict. Drop one of them."
            )
    try:
        pipe.set_params(**routed)
    except (ValueError, TypeError) as exc:  # a field the new object lacks
        raise CLIError(f"--set: {exc}") from None
    for name, step in pipe.steps:
        objects = [v for v in step.get_params(deep=False).values()]
        objects = [v for v in objects if hasattr(v, "_validate_params")]
        try:
            for obj in (step, *objects):
                obj._validate_params()
        except (ValueError, TypeError) as exc:
            raise CLIError(f"--set: {name}: {exc}") from None
    check_training_device(pipe[-1].device)


def refuse_field_of_none(pipe, key, valid):
    """Say so when ``key`` sets a field of a parameter object that is None."""
    from sklearn_sed.io import parameter_object_classes

    owner, sep, field = key.rpartition("__")
    if not sep:
        return
    holders = [
        k for k in (owner, *(f"{s}__{owner}" for s, _ in pipe.steps)) if k in valid
    ]
    if holders and valid[holders[0]] is None:
        kind = {
            "pseudo_labels": "PseudoLabelSchedule",
            "mean_teacher": "MeanTeacher",
            "lr_schedule": "WarmupCosine",
            "augment": "Augment",
            "decoder": "Decoder",
        }.get(owner.rpartition("__")[2])
        example = (
            f" e.g. --set '{owner}={kind}({field}=...)'"
            if kind in parameter_object_classes()
            else ""
        )
        raise CLIError(
            f"--set {key}=...: {owner} is None here, so it has no field {field}; "
            f"set the whole object instead,{example}."
        )


def check_training_device(device):
    """Raise a :class:`CLIError` unless ``device`` can train here."""
    from sklearn_sed._device import check_device

    try:
        check_device(device, trains=True)
    except ValueError as exc:
        raise CLIError(f"--set: {exc}") from None
