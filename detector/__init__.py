"""Detector: before/after imagery in, disturbance patches (扰动图斑) out."""
