"""Image files: the one list of file name endings that every tool and dataset reads as images."""

# Lower case; OpenCV decodes all of them.
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
