"""Pictures for UPS: skeleton frames, 2D-to-3D lifting animations, early-prediction curves, the routing map
and training curves (matplotlib, drawn off-screen; no checkpoint imports this subpackage).

Every function saves one file and returns its path; figure sizes are explicit (`figsize` in inches times
`dpi`) so a picture's pixel size is known in advance. `modeling_ups.visualization.cli.main` exposes them on
the command line.
"""

from .charts import plot_early_prediction, plot_routing_map, plot_training_curves, read_log_history, routing_table
from .skeleton import animate_lifting, draw_skeleton_2d, draw_skeleton_3d, plot_skeleton_2d, plot_skeleton_3d

__all__ = [
    "plot_skeleton_2d",
    "plot_skeleton_3d",
    "draw_skeleton_2d",
    "draw_skeleton_3d",
    "animate_lifting",
    "plot_early_prediction",
    "routing_table",
    "plot_routing_map",
    "read_log_history",
    "plot_training_curves",
]
