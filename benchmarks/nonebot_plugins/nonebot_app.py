"""NoneBot2 entry point for the benchmark: OneBot v11 adapter, the plugin named by BENCH_PLUGIN."""

from pathlib import Path

import nonebot
from nonebot.adapters.onebot.v11 import Adapter

nonebot.init()
nonebot.get_driver().register_adapter(Adapter)
plugin = getattr(nonebot.get_driver().config, "bench_plugin", "count")
nonebot.load_plugin(Path(__file__).with_name(f"bench_{plugin}.py"))

if __name__ == "__main__":
    nonebot.run()
