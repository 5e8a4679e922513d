"""The paper's metrics: Dice, ASSD, HD (Table 1), localization error and identification
rate (Table 2), plus the one shared ``centroids_from_labels``; outline Dice, recall and
precision, and which expert vertebra each predicted one lies on (``correspondence``)."""

from SpineLabelerLib.evaluation.centroids import Centroids, centroids_from_labels
from SpineLabelerLib.evaluation.correspondence import (
    OutlineScore,
    PredictedVertebra,
    outline_scores,
    pair_counts,
    predicted_matches,
)
from SpineLabelerLib.evaluation.localization import (
    ID_MAX_ERROR_MM,
    LocalizationScore,
    extra_predictions,
    localization_scores,
)
from SpineLabelerLib.evaluation.segmentation import (
    OverlapScores,
    dice,
    hausdorff_sitk_mm,
    label_overlap,
    on_reference_grid,
    surface_distances_mm,
)
from SpineLabelerLib.evaluation.tables import (
    Evaluation,
    GroupSummary,
    VertebraRow,
    evaluate,
    format_tables,
    summarize,
    write_tables,
)

__all__ = [
    "ID_MAX_ERROR_MM",
    "Centroids",
    "Evaluation",
    "GroupSummary",
    "LocalizationScore",
    "OutlineScore",
    "OverlapScores",
    "PredictedVertebra",
    "VertebraRow",
    "centroids_from_labels",
    "dice",
    "evaluate",
    "extra_predictions",
    "format_tables",
    "hausdorff_sitk_mm",
    "label_overlap",
    "localization_scores",
    "on_reference_grid",
    "outline_scores",
    "pair_counts",
    "predicted_matches",
    "summarize",
    "surface_distances_mm",
    "write_tables",
]
