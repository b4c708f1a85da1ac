"""maskcls: mask / gender / age photo classification, from raw competition folders to a submission."""

__version__ = "0.1.0"
