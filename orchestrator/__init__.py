"""orchestrator: Terraform-like plan/apply for Binance sub-account API keys."""

__version__ = "0.1.0"
