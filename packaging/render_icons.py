"""Render the application icon's PNG, .ico and .icns files from its SVGs, after editing them.

    QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/render_icons.py

The SVGs are the source; the renders are committed because neither Qt nor the OS draws an SVG as
a window or executable icon everywhere, and PyInstaller needs the .ico/.icns at build time. Qt's
SVG renderer draws them (no new dependency); Pillow writes the .ico (every ``APP_ICON_SIZES``
render, so Windows never scales one) and the .icns (32 to 1024 px, the sizes Pillow writes).
The 16 px render comes from the small SVG, drawn on that pixel grid to stay legible.
"""
from __future__ import annotations

import io
import sys

from PIL import Image
from PySide6.QtCore import QBuffer, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

from desktop import resources

ICNS_SIZES = (32, 64, 128, 256, 512, 1024)


def render(size: int) -> Image.Image:
    """The icon at ``size`` pixels, as a Pillow RGBA image."""
    svg = resources.APP_ICON_SMALL_SVG if size <= 16 else resources.APP_ICON_SVG
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg} is not a valid SVG")
    image = QImage(size, size, QImage.Format_ARGB32)
    image.fill(Qt.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.Antialiasing)
    renderer.render(painter)
    painter.end()
    buffer = QBuffer()
    buffer.open(QBuffer.WriteOnly)
    image.save(buffer, "PNG")
    return Image.open(io.BytesIO(bytes(buffer.data()))).convert("RGBA")


def main() -> None:
    QGuiApplication(sys.argv[:1])
    renders = {size: render(size) for size in sorted({*resources.APP_ICON_SIZES, *ICNS_SIZES})}
    for size in resources.APP_ICON_SIZES:
        renders[size].save(resources.app_icon_png(size), optimize=True)
    largest = max(resources.APP_ICON_SIZES)
    renders[largest].save(resources.APP_ICON_ICO, sizes=[(s, s) for s in resources.APP_ICON_SIZES],
                          append_images=[renders[s] for s in resources.APP_ICON_SIZES if s != largest])
    renders[max(ICNS_SIZES)].save(resources.APP_ICON_ICNS, append_images=[renders[s] for s in ICNS_SIZES[:-1]])
    print(f"wrote {len(resources.APP_ICON_SIZES)} PNGs, {resources.APP_ICON_ICO.name} and "
          f"{resources.APP_ICON_ICNS.name} in {resources.APP_ICON_SVG.parent}")


if __name__ == "__main__":
    main()
