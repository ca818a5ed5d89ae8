"""Embedded synthetic datasets (``synthetic``) and up-front checks of datasets on disk
(``checks``)."""
