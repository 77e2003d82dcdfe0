"""Own checkout: orders for our own products, priced with coupons and paid through WeChat Pay (JSAPI)."""
