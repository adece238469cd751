"""The core pipeline's building blocks: images, catalog, descriptors, whitening, search and the
decision. Imports nothing from verification, recognition, tools or shells."""
