"""The files polyskill knows: where each lives under the data root, its SHA-256 and where to get it; and the
few-shot image sets it reads from a folder under the data root but does not download (gigabytes behind Google
Drive or Zenodo pages): where each goes and where to get it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FileEntry:
    """One data file: its path relative to the data root, its digest and its public address."""

    path: str
    sha256: str
    url: str | None = None
    hint: str = ""


_GH = "https://github.com"

FILES: dict[str, FileEntry] = {
    e.path: e
    for e in [
        FileEntry(
            "omniglot/images_background.npz",
            "8bf84167413cd00beacdce3fe582f780ab538d8dbef043a6d688f2527bbce199",
            f"{_GH}/bitsandscraps/omniglot/raw/HEAD/images_background.npz",
        ),
        FileEntry(
            "omniglot/images_evaluation.npz",
            "0b84c7ffd94c4841c0040e529c86a82eaaccb986d8eadad5673f7991b7475276",
            f"{_GH}/bitsandscraps/omniglot/raw/HEAD/images_evaluation.npz",
        ),
        FileEntry(
            "omniglot/alphabets.json",
            "e0f12afb6029ac71aa4db3d2d527b39d6b5764e3dfcf30727e42dc1e02db5f00",
            None,
            "derived from the folder layout of the original Omniglot release; copy it from a "
            "polyskill data root that has it",
        ),
        *[
            FileEntry(
                f"omniglot/splits/vinyals/{name}.txt",
                digest,
                f"{_GH}/jakesnell/prototypical-networks/raw/HEAD/data/omniglot/splits/vinyals/{name}.txt",
            )
            for name, digest in [
                ("train", "984522c194c30fb678ce53304a160a42faf5403ad4f9a67010f32dd3a35738e0"),
                ("val", "11f99e54faee3e26f53d3231c1cceac5bf7b8730e9be31cb6dab256551dc0c1a"),
                ("test", "845264cc5c156180828ccf17915668b17ee21424d0170df6e7d81676aa5d1204"),
                ("trainval", "5276ae50c755596d0bff7f2284e85625695549a85ee6e36b6491ad1e5d1cc26a"),
            ]
        ],
        *[
            FileEntry(
                f"fashion-mnist/{name}",
                digest,
                None,
                "these are the recompressed files of Debian's dataset-fashion-mnist package "
                "(upstream .gz bytes differ); copy them from that package",
            )
            for name, digest in [
                ("train-images-idx3-ubyte.gz", "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"),
                ("train-labels-idx1-ubyte.gz", "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"),
                ("t10k-images-idx3-ubyte.gz", "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"),
                ("t10k-labels-idx1-ubyte.gz", "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"),
            ]
        ],
        FileEntry(
            "school/school.mat",
            "57fb3238fdd03a9aa17276e2ce18d9bbb5d128c3261e794fe6233b58b6909068",
            f"{_GH}/jiayuzhou/MALSAR/raw/HEAD/data/school.mat",
        ),
        FileEntry(
            "parkinsons/parkinsons_updrs.data",
            "f2c7d5025dec4e92e7feae367a5f7ccf58789a10ac6b54bdf15976c599f9dd39",
            "https://archive.ics.uci.edu/ml/machine-learning-databases/parkinsons/telemonitoring/parkinsons_updrs.data",
        ),
        FileEntry(
            "text/huffpost.json",
            "2485569669dd7ec5bf1e2f7468568a1d019faeb9941205bc9fb7edae93c488d6",
            f"{_GH}/ws-jiang/MetaPrompter_public/raw/HEAD/data/huffpost.json",
        ),
        FileEntry(
            "text/clinc150_data_full.json",
            "36923c3705a59e08fe9c3883d8bc2dd966ef93e22cb78ac41171782a698d56e0",
            f"{_GH}/clinc/oos-eval/raw/HEAD/data/data_full.json",
        ),
        FileEntry(
            "text/banking77_train.csv",
            "b06e26ac675513959a63135f11b94ea7786ed02da65db93a5650d8838cbc664b",
            f"{_GH}/PolyAI-LDN/task-specific-datasets/raw/HEAD/banking_data/train.csv",
        ),
        FileEntry(
            "text/banking77_test.csv",
            "d12d6e3bc4c3103966ae786dc435913c0c563dfa328f5a3646d0e62cfeeb474d",
            f"{_GH}/PolyAI-LDN/task-specific-datasets/raw/HEAD/banking_data/test.csv",
        ),
        FileEntry(
            "text/banking77_categories.json",
            "53261da888122daf2d120d925458631d9619e15d82e56052e7a42e535ce32b63",
            f"{_GH}/PolyAI-LDN/task-specific-datasets/raw/HEAD/banking_data/categories.json",
        ),
        FileEntry(
            "text/fewrel_val_wiki.json",
            "76bb44c2485b6faed358a3ce040eadafcc8a8835245cd7e6afc1bef672d4a0bf",
            f"{_GH}/thunlp/FewRel/raw/HEAD/data/val_wiki.json",
        ),
        FileEntry(
            "text/fewrel_pid2name.json",
            "eeedd25512a8e4c2bc06b78009836d27de81807bcba6ed929debd5cd713c07ea",
            f"{_GH}/thunlp/FewRel/raw/HEAD/data/pid2name.json",
        ),
    ]
}

DATASETS: dict[str, list[str]] = {}
for _path in FILES:
    DATASETS.setdefault(_path.split("/", 1)[0], []).append(_path)


@dataclass(frozen=True)
class ImageSetEntry:
    """A few-shot image set read from `folder` under the data root: its title, the public addresses of its
    files, what must be inside the folder (`layout`, in words) and the digests of its archives where they are
    known (`archive_digests`: archive name, algorithm, digest; the loader reads the extracted files, not the
    archive), the published size of each split (`sizes`: split, classes, images; images None where only the
    set's total is published, `total_images`), which `polyskill data verify` checks a download against, and the
    side its images are read at unless a recipe says otherwise (`image_size`)."""

    title: str
    folder: str
    urls: tuple[str, ...]
    layout: str
    archive_digests: tuple[tuple[str, str, str], ...] = ()
    sizes: tuple[tuple[str, int, int | None], ...] = ()
    total_images: int | None = None
    image_size: int = 84


_ZENODO = "https://zenodo.org/record/7978538/files"  # learn2learn's copies of the few-shot releases

IMAGE_SETS: dict[str, ImageSetEntry] = {
    "miniimagenet": ImageSetEntry(
        "miniImageNet (Vinyals et al. 2016, the Ravi & Larochelle 2017 split)",
        "mini-imagenet",
        tuple(f"{_ZENODO}/mini-imagenet-cache-{s}.pkl" for s in ("train", "validation", "test")),
        "it holds mini-imagenet-cache-{train,val,test}.pkl (the pickle release; -validation.pkl is also read), "
        "or train.csv, val.csv and test.csv of the Ravi & Larochelle split with their images/ folder of JPEGs",
        sizes=(("train", 64, 38400), ("val", 16, 9600), ("test", 20, 12000)),  # 600 images a class
    ),
    "tieredimagenet": ImageSetEntry(
        "tieredImageNet (Ren et al. 2018)",
        "tiered-imagenet",
        (
            *(
                f"{_ZENODO}/tiered-imagenet-{s}_{kind}.pkl"
                for s in ("train", "val", "test")
                for kind in ("images_png", "labels")
            ),
            "https://drive.google.com/open?id=1g1aIDy2Ar_MViF2gDXFYDBTR-HYecV07",
        ),
        "it holds {train,val,test}_images_png.pkl (or {train,val,test}_images.npz) and {train,val,test}_labels.pkl "
        "of the release of github.com/renmengye/few-shot-ssl-public (Zenodo's copies are prefixed "
        "tiered-imagenet-: drop the prefix)",
        sizes=(("train", 351, 448695), ("val", 97, 124261), ("test", 160, 206209)),  # 779165 in all
    ),
    "cifarfs": ImageSetEntry(
        "CIFAR-FS (Bertinetto et al. 2019)",
        "cifar-fs",
        ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", f"{_ZENODO}/cifar100.zip"),
        "it holds cifar-100-python/{train,test,meta} (the CIFAR-100 python release, extracted) and "
        "splits/bertinetto/{train,val,test}.txt (class names a line; cifar100/splits/bertinetto/ in cifar100.zip)",
        (("cifar-100-python.tar.gz", "MD5", "eb9058c3a382ffc7106e4002c42a8d85"),),  # published beside the download
        sizes=(("train", 64, 38400), ("val", 16, 9600), ("test", 20, 12000)),  # 500 + 100 images a class
        image_size=32,
    ),
    "cub": ImageSetEntry(
        "CUB-200-2011 (Wah et al. 2011)",
        "cub",
        (
            "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz",
            "https://zenodo.org/record/8000562/files/CUB_200_2011.tgz",
        ),
        "it holds CUB_200_2011/ as the archive extracts it: images/<class>/*.jpg, images.txt, "
        "image_class_labels.txt and classes.txt",
        (("CUB_200_2011.tgz", "SHA-256", "0c685df5597a8b24909f6a7c9db6d11e008733779a671760afef78feb49bf081"),),
        sizes=(("train", 100, None), ("val", 50, None), ("test", 50, None)),  # Chen et al.'s split of 200 classes
        total_images=11788,
    ),
}
