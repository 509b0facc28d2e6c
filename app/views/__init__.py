"""The dashboard's pages, one script each, registered with st.Page in app/main.py."""
