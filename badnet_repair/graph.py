"""A Keras model's layer graph, read through public API only: the model's config (the
saved format, the same for Sequential, functional and Keras-2 HDF5 models once loaded)
names each layer call and the layer outputs it takes. Sub-models (the front up to the
pruned layer, the head after it) are rebuilt by calling the model's own layer objects
on new inputs, so they share its weights."""
from __future__ import annotations

from .errors import BadInput
from .model import keras


class _Ref:
    """A layer output inside a call's arguments: key (layer name, call index, output
    index) and shape (without the batch axis)."""

    def __init__(self, config):
        history = config["keras_history"]
        self.key = (history[0], int(history[1]), int(history[2]))
        self.shape = tuple(config["shape"][1:])


def _iter_refs(obj):
    if isinstance(obj, _Ref):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _iter_refs(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _iter_refs(o)


def _refs(obj):
    return [ref.key for ref in _iter_refs(obj)]


def _parse(obj):
    """A call's serialised arguments, each keras tensor replaced by a _Ref."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            return _Ref(obj["config"])
        return {k: _parse(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):  # a live config holds tuples, a saved one lists
        return [_parse(o) for o in obj]
    return obj


def _resolve(obj, tensor):
    if isinstance(obj, _Ref):
        return tensor(obj.key)
    if isinstance(obj, list):
        return [_resolve(o, tensor) for o in obj]
    if isinstance(obj, dict):
        return {k: _resolve(v, tensor) for k, v in obj.items()}
    return obj


def _endpoints(spec):
    """A config's input_layers / output_layers: one [name, node, index] or a list of them."""
    if spec and isinstance(spec[0], str):
        spec = [spec]
    return [(s[0], int(s[1]), int(s[2])) for s in spec]


class Graph:
    """calls[(layer, i)] = (args, kwargs) of the layer's i-th call in the model."""

    def __init__(self, model):
        if isinstance(model, keras.Sequential):  # the same layers, called as a functional model
            x = inp = keras.Input(model.input_shape[1:])
            for layer in model.layers:
                x = layer(x)
            model = keras.Model(inp, x, name=model.name)
        cfg = model.get_config()
        if not isinstance(cfg, dict) or "layers" not in cfg or "input_layers" not in cfg:
            raise BadInput(f"model {model.name!r}: a {type(model).__name__} is neither a Sequential nor a "
                           f"functional Keras model, so its layer graph cannot be read")
        self.model = model
        self.layers = {layer.name: layer for layer in model.layers}
        self.calls: dict = {}
        for entry in cfg["layers"]:
            for i, node in enumerate(entry.get("inbound_nodes") or []):
                self.calls[(entry["name"], i)] = (_parse(node.get("args", [])), _parse(node.get("kwargs", {})))
        self.inputs, self.outputs = _endpoints(cfg["input_layers"]), _endpoints(cfg["output_layers"])
        self.input_shapes = {key: tuple(t.shape[1:]) for key, t in zip(self.inputs, model.inputs)}

    def layer(self, name: str, param: str = "prune.layer", would_do=None):
        """The layer `name`, or BadInput naming `param` and the layers that would do
        (`would_do`, default all)."""
        if name not in self.layers:
            raise BadInput(f"params.yaml: '{param}' is {name!r}, but the model has no such layer "
                           f"(layers that would do: {', '.join(would_do if would_do is not None else self.layers)})")
        return self.layers[name]

    def parents(self, name: str) -> list[str]:
        """The layers whose outputs `name` takes, in argument order (its calls together)."""
        found = []
        for (layer, _), (args, kwargs) in self.calls.items():
            if layer == name:
                found += [key[0] for key in _refs([args, kwargs])]
        return found

    def call_count(self, name: str) -> int:
        return sum(1 for layer, _ in self.calls if layer == name)

    def children(self, name: str) -> list[str]:
        """The distinct layers that take an output of `name`, in model order."""
        found = {}
        for (layer, _), call in self.calls.items():
            if any(key[0] == name for key in _refs(list(call))):
                found.setdefault(layer, None)
        return list(found)

    def submodel(self, starts: list[str], stops: list, name: str = "sub") -> keras.Model:
        """The model from the outputs of `starts` (layer names; none: the model's input) to
        `stops` (layer names, or (layer, call, index) keys), with the model's own layers.

        BadInput if a stop depends on a tensor that does not come from the starts: a path
        that bypasses them."""
        memo, inputs = {}, []
        for start in starts or [None]:
            if start is None:
                for key in self.inputs:
                    memo[key] = keras.Input(self.input_shapes[key], name=key[0])
                    inputs.append(memo[key])
            else:
                key = (start, 0, 0)
                memo[key] = keras.Input(self._shape(key), name=f"{start}_output")
                inputs.append(memo[key])

        reach = self._downstream(starts) if starts else None

        def tensor(key):
            if key not in memo:
                if reach is not None and key[0] not in reach or (key[0], key[1]) not in self.calls:
                    raise BadInput(f"params.yaml: the model cannot be cut at {', '.join(starts)}: "
                                   f"its output also depends on {key[0]!r}, which bypasses that layer "
                                   f"(a skip connection around it)")
                args, kwargs = self.calls[(key[0], key[1])]
                out = self.layers[key[0]](*_resolve(args, tensor), **_resolve(kwargs, tensor))
                for i, o in enumerate(out if isinstance(out, (list, tuple)) else [out]):
                    memo[(key[0], key[1], i)] = o
            return memo[key]

        outs = [tensor(s if isinstance(s, tuple) else (s, 0, 0)) for s in stops]
        return keras.Model(inputs if len(inputs) > 1 else inputs[0], outs if len(outs) > 1 else outs[0], name=name)

    def _downstream(self, starts) -> set[str]:
        """The layers that take, directly or not, an output of `starts`."""
        found, todo = set(), list(starts)
        while todo:
            for child in self.children(todo.pop()):
                if child not in found:
                    found.add(child)
                    todo.append(child)
        return found

    def _shape(self, key):
        """The shape (without batch) of one layer output, found where a call takes it."""
        for args, kwargs in self.calls.values():
            for ref in _iter_refs([args, kwargs]):
                if ref.key == key and ref.shape is not None:
                    return ref.shape
        return tuple(self.model.outputs[self.outputs.index(key)].shape[1:])  # read by no call: an output


def rebuild(model, first=None, last=None, name: str = "rebuilt") -> keras.Model:
    """`model`'s own layers called anew on a new input: `first` (tensor -> tensor) applied to
    the input before them and `last` to the output after them, such as a Rescaling layer or a
    separate softmax. The layers are shared with `model`: copy the result to train it apart."""
    graph = Graph(model)
    inp = keras.Input(model.input_shape[1:], name="pixels")
    memo = {graph.inputs[0]: first(inp) if first else inp}

    def tensor(key):
        if key not in memo:
            args, kwargs = graph.calls[(key[0], key[1])]
            out = graph.layers[key[0]](*_resolve(args, tensor), **_resolve(kwargs, tensor))
            for i, o in enumerate(out if isinstance(out, (list, tuple)) else [out]):
                memo[(key[0], key[1], i)] = o
        return memo[key]

    out = tensor(graph.outputs[0])
    return keras.Model(inp, last(out) if last else out, name=name)
