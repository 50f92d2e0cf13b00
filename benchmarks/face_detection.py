"""The face detector on faces and face-free images that ship in packages: the README's detector table row.

    python benchmarks/face_detection.py

Faces: scikit-image's astronaut and matplotlib's Grace Hopper in 9 versions each (found = a box whose centre
lies in the hand-marked face and whose area is 0.2..4x it), and the 100 faces of scikit-image's lfw_subset
(25 px, enlarged 4x on a grey canvas). Negatives: its 100 non-faces and 20 face-free photos. Time: median of 7
detections on a 1280x720 frame.
"""

import io
import statistics
import time

import numpy as np
from matplotlib import cbook
from PIL import Image, ImageEnhance, ImageFilter
from skimage import data as skimage_data
from sklearn.datasets import load_sample_images

from corit_hf.video.faces import FaceDetector


FACE_BOXES = {"astronaut": (165, 45, 290, 185), "grace_hopper": (170, 120, 360, 340)}
NEGATIVES = (
    "chelsea coffee rocket cat horse brick grass gravel page text hubble_deep_field immunohistochemistry retina "
    "colorwheel clock moon coins logo"
).split()


def face_photos() -> dict[str, Image.Image]:
    with cbook.get_sample_data("grace_hopper.jpg") as stream:
        hopper = Image.open(stream).convert("RGB")
    return {"astronaut": Image.fromarray(skimage_data.astronaut()), "grace_hopper": hopper}


def versions(photo: Image.Image, box: tuple) -> list[tuple[str, Image.Image, tuple]]:
    """The photo and 8 harder versions of it, each with the face box moved along."""
    x0, y0, x1, y1 = box
    width, height = photo.size
    jpeg = io.BytesIO()
    photo.save(jpeg, "JPEG", quality=20)
    scene = Image.fromarray(skimage_data.coffee()).resize((1280, 720))
    scene.paste(photo.resize((width // 2, height // 2)), (700, 150))
    return [
        ("original", photo, box),
        ("half", photo.resize((width // 2, height // 2)), tuple(v // 2 for v in box)),
        ("quarter", photo.resize((width // 4, height // 4)), tuple(v // 4 for v in box)),
        ("mirrored", photo.transpose(Image.FLIP_LEFT_RIGHT), (width - x1, y0, width - x0, y1)),
        ("rotated 15", photo.rotate(15, center=((x0 + x1) / 2, (y0 + y1) / 2)), box),
        ("JPEG 20", Image.open(jpeg).convert("RGB"), box),
        ("dark", ImageEnhance.Brightness(photo).enhance(0.4), box),
        ("blurred", photo.filter(ImageFilter.GaussianBlur(2)), box),
        ("in a 720p frame", scene, (700 + x0 // 2, 150 + y0 // 2, 700 + x1 // 2, 150 + y1 // 2)),
    ]


def found(faces, box: tuple) -> bool:
    x0, y0, x1, y1 = box
    area = (x1 - x0) * (y1 - y0)
    return any(
        x0 <= (f.x0 + f.x1) / 2 <= x1 and y0 <= (f.y0 + f.y1) / 2 <= y1 and 0.2 <= f.area / area <= 4 for f in faces
    )


def lfw_images() -> tuple[list[Image.Image], list[Image.Image]]:
    """lfw_subset's 100 faces and 100 non-faces, enlarged 4x on a 200 px grey canvas."""

    def enlarge(patch: np.ndarray) -> Image.Image:
        canvas = Image.new("L", (200, 200), 128)
        canvas.paste(Image.fromarray((patch * 255).astype(np.uint8)).resize((100, 100), Image.BICUBIC), (50, 50))
        return canvas.convert("RGB")

    patches = skimage_data.lfw_subset()
    return [enlarge(p) for p in patches[:100]], [enlarge(p) for p in patches[100:]]


def negative_photos() -> dict[str, Image.Image]:
    photos = {}
    for name in NEGATIVES:
        pixels = np.asarray(getattr(skimage_data, name)())
        if pixels.dtype != np.uint8:
            pixels = (pixels * 255 if pixels.max() <= 1 else pixels).astype(np.uint8)
        photos[name] = Image.fromarray(pixels).convert("RGB")
    for name, pixels in zip(("china", "flower"), load_sample_images().images):
        photos[name] = Image.fromarray(pixels)
    return photos


def main() -> None:
    detector = FaceDetector()
    photos = face_photos()
    results = [
        (f"{name} {version}", found(detector.detect(image), box))
        for name, photo in photos.items()
        for version, image, box in versions(photo, FACE_BOXES[name])
    ]
    missed = [name for name, ok in results if not ok]
    lfw_faces, lfw_others = lfw_images()
    false_photos = [name for name, image in negative_photos().items() if detector.detect(image)]
    frame = Image.fromarray(skimage_data.coffee()).resize((1280, 720))
    frame.paste(photos["astronaut"].resize((256, 256)), (700, 150))
    detector.detect(frame)
    times = []
    for _ in range(7):
        start = time.perf_counter()
        detector.detect(frame)
        times.append(time.perf_counter() - start)
    print(f"package faces found:         {len(results) - len(missed)}/{len(results)} (missed: {missed or 'none'})")
    print(f"LFW faces found:             {sum(bool(detector.detect(image)) for image in lfw_faces)}/100")
    print(f"face-free photos with a box: {len(false_photos)}/{len(NEGATIVES) + 2} {false_photos or ''}")
    print(f"LFW non-faces with a box:    {sum(bool(detector.detect(image)) for image in lfw_others)}/100")
    print(f"ms per 1280x720 frame:       {1000 * statistics.median(times):.0f}")


if __name__ == "__main__":
    main()
