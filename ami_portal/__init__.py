"""ami_portal package."""
