"""Makes mmengine accept ``lomar_transfer::`` config paths in every Python process.

mmengine 0.10.7 resolves ``_base_ = 'pkg::path'`` only for the packages in its own table
(``mmengine/config/utils.py`` ``MODULE2PACKAGE``), and it parses a config's ``_base_`` before the
config's ``custom_imports`` run, so importing lomar_transfer from a config is too late for the stock
tools. ``lomar_transfer.pth`` (installed next to the package) imports this module when Python
starts; importing mmengine then would slow every start, so the entry is added the moment
mmengine's config utilities are first imported.
"""
import importlib.abc
import importlib.util
import sys

_MODULE = 'mmengine.config.utils'


def _register(utils):
    utils.MODULE2PACKAGE.setdefault('lomar_transfer', 'lomar_transfer')


class _RegisterOnImport(importlib.abc.MetaPathFinder):

    def find_spec(self, name, path=None, target=None):
        if name != _MODULE:
            return None
        sys.meta_path.remove(self)  # one use; also keeps the lookup below from reaching us
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_register(module):
            exec_module(module)
            _register(module)

        spec.loader.exec_module = exec_and_register
        return spec


if _MODULE in sys.modules:
    _register(sys.modules[_MODULE])
else:
    sys.meta_path.insert(0, _RegisterOnImport())
