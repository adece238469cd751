"""Why and where: heatmaps, filters and activations, landmark boxes (locate), evidence pictures."""


def __getattr__(name: str):
    if name == "heatmap":
        from landmark_finder.explain.heatmaps import heatmap

        return heatmap
    raise AttributeError(name)
