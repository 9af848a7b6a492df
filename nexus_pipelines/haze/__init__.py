"""HAZE: a 2-D map of every space (PCA, then UMAP or t-SNE), with labelled clusters and pictures.

``reducer`` fits and keeps the map in open formats, ``clusters`` finds and labels regions, ``plot`` draws
the PNG (and notebooks' maps), ``html_map`` the interactive page, ``writer`` stores a snapshot,
``projection`` runs one snapshot, ``assets`` wraps it for Dagster. ``nexus_query.haze`` reads the maps.
"""

import dagster as dg

from nexus_pipelines.haze.assets import haze_job, haze_projection, haze_refresh_sensor, haze_request_sensor

defs = dg.Definitions(assets=[haze_projection], jobs=[haze_job], sensors=[haze_request_sensor, haze_refresh_sensor])
