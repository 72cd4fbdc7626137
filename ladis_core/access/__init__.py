"""Who may see and do what in the dashboard, and what it may read.

- :mod:`~ladis_core.access.sources`: the allowed data sources (``LADIS_S3_URI`` plus
  ``LADIS_ALLOWED_SOURCES``);
- :mod:`~ladis_core.access.roles`: viewer / analyst / admin, their permissions, and the
  role of a signed-in user from the claims of their ID token;
- :mod:`~ladis_core.access.exposure`: whether sign-in is configured, where the dashboard
  may listen without it, how long a session lasts.

Plain library code (no Streamlit): the dashboard (``app/auth.py``) applies it.
"""

from ladis_core.access.roles import Permission, Role, RolePolicy, can, permissions
from ladis_core.access.sources import SourcePolicy

__all__ = ["Permission", "Role", "RolePolicy", "SourcePolicy", "can", "permissions"]
