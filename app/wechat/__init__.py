"""Every call to WeChat goes through wechatpy clients built here from config."""
