"""Shared setup of the install-artefact tests (chart, deploy/ manifests, examples): see
manifests.py for rendering and offline validation."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
