"""The AJAHR amputation core: the index table, labels, zero-matrix amputation and masks."""

from a3d_data.amputation.apply import amputate, amputate_rotmats, check_rotmats
from a3d_data.amputation.labels import (
    MULTI_LIMB,
    absent_coco_keypoints,
    class_index_from_head_labels,
    classes_from_head_labels,
    head_labels,
    head_labels_from_classes,
    zeroed_joint_mask,
)
from a3d_data.amputation.masks import (
    affected_vertex_mask,
    collapsed_vertex_mask,
    removed_skinning_weight,
)
from a3d_data.amputation.table import (
    AMPUTATION_CLASSES,
    NON_AMPUTEE,
    NUM_CLASSES,
    NUM_HEAD_CLASSES,
    NUM_HEADS,
    AmputationClass,
    Level,
    Limb,
    UnknownAmputationError,
    amputation_class,
    class_for,
)

__all__ = [
    "AMPUTATION_CLASSES", "MULTI_LIMB", "NON_AMPUTEE", "NUM_CLASSES", "NUM_HEADS",
    "NUM_HEAD_CLASSES", "AmputationClass", "Level", "Limb", "UnknownAmputationError",
    "absent_coco_keypoints", "affected_vertex_mask", "amputate", "amputate_rotmats",
    "amputation_class", "check_rotmats", "class_for", "class_index_from_head_labels",
    "classes_from_head_labels", "collapsed_vertex_mask", "head_labels", "head_labels_from_classes",
    "removed_skinning_weight", "zeroed_joint_mask",
]  # fmt: skip
