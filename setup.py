"""lomar_transfer: detection/segmentation transfer benchmark for masked-image-modeling ViTs.

Install with ``bash tools/install.sh`` (builds mmcv with compiled ops, then installs this package
editable into .venv). The pins and the reasons for them live in ``requirements/*.txt``.
"""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def read_requirements(name):
    """Requirement lines of ``requirements/<name>``, comments stripped."""
    lines = (HERE / 'requirements' / name).read_text().splitlines()
    reqs = [line.split('#', 1)[0].strip() for line in lines]
    return [r for r in reqs if r]


# mmcv is left out on purpose: no binary wheel exists for this stack and pip's isolated sdist build
# cannot see torch; tools/install.sh builds and caches it (see requirements/mminstall.txt).
install_requires = (read_requirements('torch.txt') + read_requirements('runtime.txt') +
                    [r for r in read_requirements('mminstall.txt') if not r.startswith('mmcv')])

setup(
    name='lomar_transfer',
    version='0.1.0',
    description='Transfer benchmark (COCO Mask R-CNN, ADE20K UperNet, ImageNet) for LoMaR, MAE '
    'and CAE ViT backbones on OpenMMLab',
    packages=find_packages(include=['lomar_transfer', 'lomar_transfer.*']),
    python_requires='>=3.9',
    install_requires=install_requires,
    extras_require={'tests': read_requirements('tests.txt')},
)
