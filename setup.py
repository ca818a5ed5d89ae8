"""lomar_transfer: detection/segmentation transfer benchmark for masked-image-modeling ViTs.

Install with ``bash tools/install.sh`` (builds mmcv with compiled ops, then installs this package
editable into .venv). The pins and the reasons for them live in ``requirements/*.txt``.
"""
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

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

class BuildWithPth(build_py):
    """Put lomar_transfer.pth at the top of the wheel (site-packages once installed), as setuptools
    does for its own distutils-precedence.pth: it lets mmengine read ``lomar_transfer::``
    configs in every process (see _lomar_transfer_scope.py)."""

    def run(self):
        super().run()
        self.copy_file(str(HERE / 'lomar_transfer.pth'),
                       str(Path(self.build_lib) / 'lomar_transfer.pth'))


setup(
    name='lomar_transfer',
    version='0.1.0',
    description='Transfer benchmark (COCO Mask R-CNN, ADE20K UperNet, ImageNet) for LoMaR, MAE '
    'and CAE ViT backbones on OpenMMLab',
    packages=find_packages(include=['lomar_transfer', 'lomar_transfer.*']),
    py_modules=['_lomar_transfer_scope'],
    cmdclass={'build_py': BuildWithPth},
    # The configs ship inside the package as OpenMMLab packages ship theirs, so that
    # `_base_ = 'lomar_transfer::lomar/...py'` resolves in an installed copy (mmengine reads
    # <package>/.mim/configs). lomar_transfer/.mim/configs is a link to configs/; the wheel gets
    # the files.
    package_data={'lomar_transfer': ['.mim/model-index.yml', '.mim/configs/*/*.py',
                                     '.mim/configs/*/*/*.py']},
    entry_points={'console_scripts': [
        'lomar-train = lomar_transfer.cli.train:main',
        'lomar-test = lomar_transfer.cli.test:main',
        'lomar-benchmark = lomar_transfer.cli.benchmark:main',
        'lomar-feature-eval = lomar_transfer.cli.feature_eval:main',
        'lomar-make-data = lomar_transfer.cli.make_synthetic_data:main',
        'lomar-visualize-reconstruction = lomar_transfer.cli.visualize_reconstruction:main',
        'lomar-visualize-attention = lomar_transfer.cli.visualize_attention:main',
        'lomar-convert = lomar_transfer.cli.to_lomar_vit:main',
        'lomar-export-timm = lomar_transfer.cli.to_timm:main',
    ]},
    python_requires='>=3.9',
    install_requires=install_requires,
    extras_require={'tests': read_requirements('tests.txt')},
)
