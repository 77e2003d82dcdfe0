"""Users, WeChat login, sessions, roles and the referral tree."""
