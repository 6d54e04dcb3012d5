"""Networks and pretrained weights (torch only; knows nothing of projects or Qt).

Submodules are imported explicitly (``from models.encoder import Encoder``) so that importing
this package stays cheap.
"""
