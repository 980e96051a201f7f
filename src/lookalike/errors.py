"""Typed errors raised by the core; the CLI and API map them to messages and 4xx codes."""


class LookalikeError(Exception):
    """Base class of every error Lookalike raises on purpose."""


class ImageDecodeError(LookalikeError):
    """An image could not be read: unsupported, truncated, corrupt or too large."""


class ImageTooLargeError(ImageDecodeError):
    """An image declares more pixels than the configured limit (decompression-bomb guard)."""


class CatalogSourceError(LookalikeError):
    """A catalog source (folder or manifest) is missing or malformed."""


class DatasetError(LookalikeError):
    """A dataset (e.g. Fashion-MNIST) could not be found, verified or parsed."""


class BackboneError(LookalikeError):
    """A backbone is unknown, its weights are missing, or it cannot be exported or run."""


class ModelMismatchError(LookalikeError):
    """Persisted data (index, head, cache) was built by a different model than the one loaded."""


class IndexCorruptError(LookalikeError):
    """A persisted vector index is truncated, corrupt or inconsistent with its manifest."""


class VectorStoreError(LookalikeError):
    """The vector store's server cannot be reached or refused a request."""


class NotFoundError(LookalikeError):
    """A requested item does not exist."""


class EmptyCatalogError(LookalikeError):
    """A search was made against a catalog with no items."""


class InvalidRequestError(LookalikeError):
    """A request's parameters are out of range or inconsistent (e.g. k < 1)."""


class FetchError(LookalikeError):
    """A URL could not be downloaded: refused, unreachable, an HTTP error, too large, or not an image."""
