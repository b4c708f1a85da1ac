"""Errors a user can act on. The CLI prints them without a traceback and exits non-zero."""


class MaskclsError(Exception):
    """Base for problems with the user's data, params or machine, as opposed to bugs."""


class DataError(MaskclsError):
    """The competition folder is broken: names the file and what is wrong."""


class ParamsError(MaskclsError):
    """params.yaml is wrong: names the key and what is expected."""


class ResourceError(MaskclsError):
    """The machine cannot do what was asked (no GPU, out of memory)."""
