"""Species ID explorer: python app.py [--host 127.0.0.1] [--port 7860] [--model NAME] ... (--help lists all)."""

import logging
import os

from explorer.services.model_tier import check_ray_address, start_model_tier, stop_on_sigterm
from explorer.services.resources import load_resources
from explorer.services.workers import limit_malloc_arenas
from explorer.settings import parse_settings
from explorer.tools.cli import one_line_errors
from explorer.ui import build_demo, launch, stage_examples


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = parse_settings(argv)
    limit_malloc_arenas()  # before any thread allocates: see services.workers
    if settings.ray_serve:
        check_ray_address(settings.ray_address)  # before the models load: an unreachable cluster is said at once
    resources = load_resources(settings)
    if settings.ray_serve:  # the identify calls on Ray Serve replicas
        resources.tier = start_model_tier(settings)
        stop_on_sigterm()
    resources.warm_maps()
    stage_examples(resources, settings.resolved_cache_dir / "examples")
    launch(build_demo(resources), resources)
    if resources.tier is not None:  # closed by Ctrl-C or SIGTERM
        resources.tier.close()
        logging.shutdown()
        os._exit(0)  # threads still inside torch (the range maps' warm-up) would abort the interpreter's exit


if __name__ == "__main__":
    main()
