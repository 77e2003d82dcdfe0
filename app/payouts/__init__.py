"""Withdrawals of available earnings to users' WeChat wallets."""
