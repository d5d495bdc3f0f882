"""Configuration and security helpers shared by the service."""
