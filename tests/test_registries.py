"""Registries refuse a name taken by another definition and accept the same definition again."""
from __future__ import annotations

import pytest

import landscape
from landscape.errors import LandscapeError
from landscape.figures import FIGURES, register_figure
from landscape.models.registry import _REGISTRY
from landscape.registries import register

SOURCE = '''
import landscape
from torch import nn

@landscape.register_model("registry_test_net")
def RegistryTestNet(width: int = 3):
    return nn.Linear(2, width)
'''


def _run_cell(namespace: dict) -> None:
    exec(compile(SOURCE, "<notebook cell>", "exec"), namespace)


def test_model_name_clash_is_one_line_naming_both():
    try:
        _run_cell({"__name__": "__main__"})
        with pytest.raises(LandscapeError, match=r"model name 'registry_test_net' is already registered to "
                                                 r"__main__:RegistryTestNet; register .*other under another name"):
            @landscape.register_model("registry_test_net")
            def other():  # noqa: ANN202
                raise AssertionError("never built")
        with pytest.raises(LandscapeError, match="model name 'mlp' is already registered to landscape.models"):
            landscape.register_model("mlp")(lambda: None)
    finally:
        _REGISTRY.pop("registry_test_net", None)


def test_rerunning_the_cell_that_registers_a_model_replaces_it():
    try:
        first, second = {"__name__": "__main__"}, {"__name__": "__main__"}
        _run_cell(first)
        _run_cell(second)  # a new function object, the same definition
        assert first["RegistryTestNet"] is not second["RegistryTestNet"]
        assert _REGISTRY["registry_test_net"] is second["RegistryTestNet"]
        assert landscape.build_model("registry_test_net", width=4).out_features == 4
        landscape.register_model("registry_test_net")(second["RegistryTestNet"])  # the same object: fine
    finally:
        _REGISTRY.pop("registry_test_net", None)


LAMBDAS = '''
import landscape
from torch import nn

landscape.register_model("registry_test_lambda")(lambda width=3: nn.Linear(2, width))
'''


def test_two_lambdas_of_one_module_clash_and_a_rerun_lambda_cell_replaces():
    try:
        first, second = {"__name__": "__main__"}, {"__name__": "__main__"}
        exec(compile(LAMBDAS, "<notebook cell 1>", "exec"), first)
        exec(compile(LAMBDAS, "<notebook cell 2>", "exec"), second)  # the same cell run again (a new file name)
        built = _REGISTRY["registry_test_lambda"]
        assert built.__code__.co_filename == "<notebook cell 2>"  # the re-run's lambda replaced the first
        assert landscape.build_model("registry_test_lambda", width=5).out_features == 5
        with pytest.raises(LandscapeError, match=r"model name 'registry_test_lambda' is already registered to "
                                                 r"__main__:<lambda>; register __main__:<lambda> under another name"):
            exec(compile(LAMBDAS.replace("nn.Linear(2, width)", "nn.Linear(3, width)"), "<notebook cell 3>", "exec"),
                 {"__name__": "__main__"})  # another lambda of the same module, same qualname '<lambda>'
        assert _REGISTRY["registry_test_lambda"] is built
        with pytest.raises(LandscapeError, match="already registered"):  # the same body on another line
            exec(compile("\n" + LAMBDAS, "<notebook cell 4>", "exec"), {"__name__": "__main__"})
    finally:
        _REGISTRY.pop("registry_test_lambda", None)


def test_figure_name_clash_is_refused():
    taken = next(iter(FIGURES))
    before = FIGURES[taken]
    with pytest.raises(LandscapeError, match=f"figure name {taken!r} is already registered to "):
        register_figure(taken, "another title")(lambda ctx: None)
    assert FIGURES[taken] is before


def test_report_measures_and_plain_objects_clash_by_identity():
    from landscape.report import MEASURES

    table = dict(MEASURES)
    register(table, "keskar", MEASURES["keskar"], "report measure")  # the same object again
    with pytest.raises(LandscapeError, match="report measure name 'keskar' is already registered"):
        register(table, "keskar", MEASURES["keskar_p100"], "report measure")
