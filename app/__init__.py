"""The LADIS analyst dashboard (Streamlit). Entry: ``streamlit run app/streamlit_app.py``.

Modules here are imported as ``app.<name>``: Streamlit puts ``app/`` itself on
``sys.path``, so bare names like ``data`` or ``state`` could collide with installed
packages.
"""
