"""Small real/fake image folders in every layout the loaders read (red real images, blue fakes)."""

from PIL import Image


RED, BLUE = (200, 30, 30), (30, 30, 200)


def make_layout(root, folders: dict[str, tuple], count: int = 2) -> None:
    """`count` small images per class folder, red for real and blue for fake."""
    for folder, colour in folders.items():
        (root / folder).mkdir(parents=True)
        for index in range(count):
            Image.new("RGB", (8, 8), colour).save(root / folder / f"{index}.png")


LAYOUT_CASES = {
    "flat": ({"0_real": RED, "1_fake": BLUE}, {"test": 4}),
    "universal-fake-detect": (
        {"guided/0_real": RED, "guided/1_fake": BLUE, "ldm-200/0_real": RED, "ldm-200/1_fake": BLUE},
        {"test_guided": 4, "test_ldm_200": 4},
    ),
    "forensynths": (
        {
            "train/car/0_real": RED,
            "train/car/1_fake": BLUE,
            "train/cat/0_real": RED,
            "train/cat/1_fake": BLUE,
            "val/car/0_real": RED,
            "val/car/1_fake": BLUE,
            "test/stylegan/bedroom/0_real": RED,
            "test/stylegan/bedroom/1_fake": BLUE,
        },
        {"train": 8, "validation": 4, "test_stylegan": 4},
    ),
    "forensynths-testset": (
        {"biggan/0_real": RED, "biggan/1_fake": BLUE, "stylegan/car/0_real": RED, "stylegan/car/1_fake": BLUE},
        {"test_biggan": 4, "test_stylegan": 4},
    ),
    "genimage": (
        {
            "sdv14/imagenet_ai/train/nature": RED,
            "sdv14/imagenet_ai/train/ai": BLUE,
            "sdv14/imagenet_ai/val/nature": RED,
            "sdv14/imagenet_ai/val/ai": BLUE,
            "midjourney/imagenet_mj/val/nature": RED,
            "midjourney/imagenet_mj/val/ai": BLUE,
        },
        {"train": 4, "test_midjourney": 4, "test_sdv14": 4},
    ),
    "real-fake-families": ({"Real": RED, "fake/gan": BLUE, "fake/vae": BLUE}, {"test": 6}),
}
