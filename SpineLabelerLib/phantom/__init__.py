"""Synthetic spine CT generator (PHANTOM.md): CTs with exact vertebra labels, centroids,
ribs on the thoracic levels, transitional variants, pathology and scanner physics."""

from SpineLabelerLib.phantom.benchmark_set import CaseSpec, benchmark_set_specs
from SpineLabelerLib.phantom.generator import PhantomCase, generate_case
from SpineLabelerLib.phantom.scan import FOVS
from SpineLabelerLib.phantom.subject import VARIANTS

__all__ = [
    "FOVS",
    "VARIANTS",
    "CaseSpec",
    "PhantomCase",
    "benchmark_set_specs",
    "generate_case",
]
