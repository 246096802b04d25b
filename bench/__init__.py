"""Side-by-side benchmark of Tollgate and CNCF distribution: `python -m bench`."""
