"""Static files storage: whitenoise's hashed and compressed files once `collectstatic` ran
(production), the plain names before it (`make run` on a fresh clone, DEBUG off).

A page links `/static/css/app.<hash>.css` from the manifest; a file the manifest lacks is
linked by its plain name, which whitenoise serves from the source folders
(WHITENOISE_USE_FINDERS), instead of the page failing with a 500.
"""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    def stored_name(self, name: str) -> str:
        try:
            return super().stored_name(name)
        except ValueError:  # not collected (yet)
            return name
