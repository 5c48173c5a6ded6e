# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""The binding is a package of modules; its top level keeps every public name."""
import importlib

import aqinit


def test_version_attribute_is_the_loaded_librarys():
    major, minor, patch = aqinit.version()
    assert aqinit.__version__ == "%d.%d.%d" % (major, minor, patch)
    assert aqinit.__version__ == aqinit.version_string()


def test_each_module_imports_and_the_top_level_reexports_it():
    for module, names in {"errors": ["AqError"], "context": ["Context"], "options": ["Options"],
                          "format": ["Format"], "hessian": ["Hessian"], "quant": ["Quant"],
                          "algorithms": ["init", "beam_search", "update_codebooks", "optimize",
                                         "quantize_layer", "vstep", "has_algorithm"],
                          "pipeline": ["Pipeline"], "safetensors": ["export_aqlm", "read_safetensors"],
                          "constants": ["constant", "version", "version_string"]}.items():
        mod = importlib.import_module("aqinit." + module)
        for name in names:
            assert getattr(aqinit, name) is getattr(mod, name), (module, name)


def test_prefixless_constants_match_the_library():
    assert aqinit.ERR_SHAPE == aqinit.constant("AQ_ERR_SHAPE") < 0
    assert aqinit.OPT_EM_TOL == aqinit.constant("AQ_OPT_EM_TOL")
