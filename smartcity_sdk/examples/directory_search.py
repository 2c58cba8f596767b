"""Search the city's directory of local businesses, locally owned ones first.

    python smartcity_sdk/examples/directory_search.py "corner cafe" --lat 52.37 --lon 4.895 --radius-km 5

Prints the categories, then each result with its distance, whether it is open now, and its score's parts.
"""

from __future__ import annotations

from smartcity_sdk import DirectoryClient
from smartcity_sdk.examples.common import parser, run


def main() -> None:
    arguments = parser(__doc__.splitlines()[0], "directory")
    arguments.add_argument("q", nargs="?", help="what to look for (typos are forgiven)")
    arguments.add_argument("--lat", type=float)
    arguments.add_argument("--lon", type=float)
    arguments.add_argument("--radius-km", type=float)
    arguments.add_argument("--category", help="only merchants of this category")
    arguments.add_argument("--accepts", help="only merchants accepting this currency (CITY, AID, CREDIT)")
    arguments.add_argument("--limit", type=int, default=10)
    args = arguments.parse_args()

    with DirectoryClient(args.directory) as directory:
        categories = directory.categories()["categories"]
        print(f"categories: {', '.join(categories)}")
        found = directory.search(
            args.q,
            lat=args.lat,
            lon=args.lon,
            radius_km=args.radius_km,
            category=args.category,
            accepts=args.accepts,
            limit=args.limit,
        )
        print(f"{found['total']} found for {args.q!r}")
        for hit in found["results"]:
            distance = "?" if hit["distance_km"] is None else f"{hit['distance_km']:.2f} km"
            opened = {True: "open", False: "closed", None: "hours unknown"}[hit["open_now"]]
            local = "locally owned" if hit["locally_owned"] else "chain or not local"
            print(
                f"- {hit['name']} ({hit['category']}, {local}, accepts {', '.join(hit['accepts'])}): "
                f"{distance}, {opened}, score {hit['score']['total']:.3f}"
            )


if __name__ == "__main__":
    run(main)
