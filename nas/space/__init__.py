"""Search spaces and architectures."""

from nas.space.architecture import Architecture
from nas.space.choice import Choice
from nas.space.search_space import SearchSpace, Slot, VideoShape

__all__ = ["Architecture", "Choice", "SearchSpace", "Slot", "VideoShape"]
