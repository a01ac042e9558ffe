"""Filters: the filter expression language, parsed once and compiled to item (or user) masks.

tree = parse('INCLUDE ItemID WHERE Items.GENRES IN ($GENRES)')   # text -> syntax tree
compiled = CompiledFilter(tree, schemas, sources)                 # tree -> mask operations
compiled.select(FilterRequest(values={"GENRES": ["Comedy"]}))     # -> Selection, per request
"""

from tastebud.filters.catalog import Catalog, EventTable, StringColumn
from tastebud.filters.compiler import CompiledFilter, FilterRequest, Sources
from tastebud.filters.parser import MAX_EXPRESSION_LENGTH, MAX_PARAMETERS, parse
from tastebud.filters.runtime import FilterRuntime, StaticSources, StoreSources, group_schemas
from tastebud.filters.selection import Selection
from tastebud.filters.syntax import Filter, parameters, render
from tastebud.filters.validate import Schemas, validate

__all__ = [
    "MAX_EXPRESSION_LENGTH",
    "MAX_PARAMETERS",
    "Catalog",
    "CompiledFilter",
    "EventTable",
    "Filter",
    "FilterRequest",
    "FilterRuntime",
    "Schemas",
    "Selection",
    "Sources",
    "StaticSources",
    "StoreSources",
    "StringColumn",
    "group_schemas",
    "parameters",
    "parse",
    "render",
    "validate",
]
