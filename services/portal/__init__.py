"""The portal: the platform's web pages (explorer, wallet, kiosk, impact, directory), served on port 8106.

Plain HTML, CSS and JavaScript modules, no build step: what the browser runs is what is in `static/`. The
portal's server holds no state and no keys. It serves the pages and passes the pages' API calls on to the
services (`proxy`), so a page talks to one origin. Every check that matters runs in the browser: proofs are
verified against the signed checkpoint there, and the wallet's key never leaves it.
"""
