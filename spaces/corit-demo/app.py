"""The CoRIT demo Space: a thin wrapper, the app itself is `corit_hf.app.space` (also behind `corit serve`).

Set the Space variable CORIT_MODEL to a CoRIT model repo id (`corit push-space` does it); without it the page
explains what is missing instead of failing.
"""

from corit_hf.app.space import build_demo, launch


demo = build_demo()

if __name__ == "__main__":
    launch(demo)
