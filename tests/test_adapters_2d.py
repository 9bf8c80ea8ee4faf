"""The 2D adapters read the real on-disk layouts of Oxford-IIIT Pet, PASCAL VOC 2012 and a user's folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged
from PIL import Image

from monai_onenet.data.demo_2d import write_demo_pet, write_demo_voc
from monai_onenet.data.folder import folder_datalist
from monai_onenet.data.pet import PET_BREEDS, pet_datalist
from monai_onenet.data.voc import VOC_IGNORE, voc_datalist
from monai_onenet.transforms import LoadVolumed, PetTargetd, image_2d_loading
from monai_onenet.transforms.checks import InputCheckError

LOAD = Compose([LoadImaged(["image", "label"]), EnsureChannelFirstd(["image", "label"])])


@pytest.fixture(scope="module")
def pet_parent(tmp_path_factory):
    parent = tmp_path_factory.mktemp("pet")
    write_demo_pet(parent, images_per_breed=2, size=48)
    return parent


@pytest.fixture(scope="module")
def voc_parent(tmp_path_factory):
    parent = tmp_path_factory.mktemp("voc")
    write_demo_voc(parent, num_images=8, size=48)
    return parent


def test_pet_breeds_follow_the_official_class_id_order():
    assert len(PET_BREEDS) == 37 and PET_BREEDS[0] == "Abyssinian" and PET_BREEDS[1] == "american_bulldog"


@pytest.mark.parametrize("form", ["parent", "folder"])
def test_pet_root_may_be_the_folder_or_its_parent(pet_parent, form):
    root = pet_parent if form == "parent" else pet_parent / "oxford-iiit-pet"
    trainval, test = pet_datalist(root, "trainval"), pet_datalist(root, "test")
    assert len(trainval) == len(test) == 37
    assert {item["breed"] for item in trainval} == set(range(37))
    cats = {item["species"] for item in trainval if item["name"][0].isupper()}
    assert cats == {0}


@pytest.mark.parametrize("target, classes", [("trimap", {0, 1, 2}), ("breed", None)])
def test_pet_targets(pet_parent, target, classes):
    item = LOAD(pet_datalist(pet_parent, "trainval")[5])
    label = PetTargetd("label", target)(item)["label"]
    values = set(np.unique(label.numpy()).astype(int).tolist())
    expected = classes if classes is not None else {0, item["breed"] + 1, 255}
    assert values == expected


def test_pet_missing_trimap_is_named(tmp_path):
    root = write_demo_pet(tmp_path, images_per_breed=1, size=32)
    trimap = next((root / "annotations" / "trimaps").glob("*.png"))
    trimap.unlink()
    with pytest.raises(FileNotFoundError, match=trimap.name):
        pet_datalist(tmp_path, "trainval")


def test_pet_missing_folder_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="demo_2d --dataset pet"):
        pet_datalist(tmp_path, "trainval")


def test_pet_trimap_value_outside_1_to_3_is_named(pet_parent, tmp_path):
    bad = tmp_path / "bad.png"
    Image.fromarray(np.full((8, 8), 7, np.uint8)).save(bad)
    item = LOAD({"image": pet_datalist(pet_parent)[0]["image"], "label": str(bad)})
    with pytest.raises(ValueError, match=r"bad.png: trimap values \[7\]"):
        PetTargetd("label", "trimap")(item)


@pytest.mark.parametrize("form", ["", "VOCdevkit", "VOCdevkit/VOC2012"])
def test_voc_root_forms_and_ignore_value(voc_parent, form):
    items = voc_datalist(voc_parent / form if form else voc_parent, "train")
    assert len(items) == 6 and len(voc_datalist(voc_parent, "val")) == 2
    label = LOAD(items[0])["label"]
    values = set(np.unique(label.numpy()).astype(int).tolist())
    assert VOC_IGNORE in values and 0 in values and values - {0, VOC_IGNORE} <= set(range(1, 21))


def test_voc_missing_split_and_missing_mask(voc_parent, tmp_path):
    with pytest.raises(FileNotFoundError, match="test.txt"):
        voc_datalist(voc_parent, "test")
    root = write_demo_voc(tmp_path, num_images=3, size=32)
    mask = next((root / "SegmentationClass").glob("*.png"))
    mask.unlink()
    with pytest.raises(FileNotFoundError, match=mask.name):
        voc_datalist(tmp_path, "trainval")


def test_pet_missing_list_file_is_named(tmp_path):
    root = write_demo_pet(tmp_path, images_per_breed=1, size=32)
    (root / "annotations" / "test.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"test.txt: Pet list file not found"):
        pet_datalist(tmp_path, "test")


def test_unreadable_image_is_named(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ValueError, match="broken.jpg: cannot be read"):
        LoadVolumed("image")({"image": str(broken)})


@pytest.mark.parametrize("exists, message", [(True, "broken.jpg: cannot be read as an image"), (False, "no such file")])
def test_pictures_chain_names_an_unreadable_or_missing_picture(tmp_path, exists, message):
    """Through the bundles' 2D chain, where MONAI itself would blame missing reader libraries."""
    broken = tmp_path / "broken.jpg"
    if exists:
        broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    chain = Compose(image_2d_loading(in_channels=3, num_classes=2, with_label=False))
    with pytest.raises(RuntimeError) as error:
        chain({"image": str(broken), "name": "broken"})
    cause = error.value.__cause__
    assert isinstance(cause, InputCheckError) and message in str(cause)
    assert "reader libraries" not in str(cause)


def _folders(tmp_path, images, masks):
    for sub, names in (("images", images), ("masks", masks)):
        (tmp_path / sub).mkdir()
        for name in names:
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / sub / f"{name}.png")


def test_folder_adapter_pairs_by_stem_and_reads_labels(tmp_path):
    _folders(tmp_path, ["a", "b"], ["a", "b"])
    (tmp_path / "labels.csv").write_text("image,label\na.png,1\nb,0\n")
    items = folder_datalist(tmp_path / "images", tmp_path / "masks", tmp_path / "labels.csv")
    assert [(i["name"], i["class_label"]) for i in items] == [("a", 1), ("b", 0)]


@pytest.mark.parametrize(
    "csv_text, message",
    [
        ("name,class\na,1\n", "header with columns 'image' and 'label'"),
        ("image,label\na,cat\nb,0\n", "line 2: label 'cat' of 'a' is not an integer"),
        ("image,label\na,1\n", "has no label for"),
    ],
)
def test_folder_adapter_bad_label_csv_is_named(tmp_path, csv_text, message):
    _folders(tmp_path, ["a", "b"], ["a", "b"])
    (tmp_path / "labels.csv").write_text(csv_text)
    with pytest.raises(ValueError, match=message):
        folder_datalist(tmp_path / "images", tmp_path / "masks", tmp_path / "labels.csv")


@pytest.mark.parametrize("missing", ["images", "masks"])
def test_folder_adapter_missing_folder_is_named(tmp_path, missing):
    _folders(tmp_path, ["a"], ["a"])
    shutil.rmtree(tmp_path / missing)
    with pytest.raises(FileNotFoundError, match=f"{missing}: folder not found"):
        folder_datalist(tmp_path / "images", tmp_path / "masks")


def test_folder_adapter_lists_unmatched_files(tmp_path):
    _folders(tmp_path, ["a", "b"], ["a", "c"])
    with pytest.raises(ValueError, match="2 file") as error:
        folder_datalist(tmp_path / "images", tmp_path / "masks")
    assert "b.png" in str(error.value) and "c.png" in str(error.value)


def test_demo_classes_are_not_a_colour_lookup(tmp_path):
    """A nearest-centroid classifier on an object's mean colour, fitted on half the images, stays near chance
    (1/20) on the other half."""
    write_demo_voc(tmp_path, num_images=120, size=32)
    colours, classes = [], []
    for item in voc_datalist(tmp_path, "trainval"):
        image = np.asarray(Image.open(item["image"]), np.float32)
        label = np.asarray(Image.open(item["label"]))
        for value in set(np.unique(label).tolist()) - {0, VOC_IGNORE}:
            colours.append(image[label == value].mean(0))
            classes.append(value)
    colours, classes = np.array(colours), np.array(classes)
    half = len(classes) // 2
    centroids = {c: colours[:half][classes[:half] == c].mean(0) for c in set(classes[:half].tolist())}
    predicted = [min(centroids, key=lambda c: np.linalg.norm(colour - centroids[c])) for colour in colours[half:]]
    assert np.mean(np.array(predicted) == classes[half:]) < 0.2


@pytest.mark.parametrize(
    "dataset, folder", [("pet", "oxford-iiit-pet/images"), ("voc", "VOCdevkit/VOC2012/JPEGImages")]
)
def test_demo_cli_writes_the_layout(tmp_path, dataset, folder):
    from monai_onenet.data.demo_2d import main

    main(["--dataset", dataset, "--out", str(tmp_path), "--size", "32", "--count", "2"])
    assert list((tmp_path / folder).glob("*.jpg"))


@pytest.mark.parametrize("dataset", ["pet", "voc"])
def test_download_fetches_the_official_archives_when_the_dataset_is_absent(tmp_path, monkeypatch, dataset):
    """``check_pet`` / ``check_voc`` with ``download``: the network is replaced by a function that writes the demo
    tree where the real archives unpack; the URLs and MD5s are the official ones."""
    import monai.apps

    from monai_onenet.data.pet import PET_ARCHIVES, check_pet
    from monai_onenet.data.voc import VOC_ARCHIVE, check_voc

    fetched = []

    def fake_download_and_extract(url, filepath, output_dir, hash_val=None, hash_type="md5", **kwargs):
        """Unpack where the real archives put their folders: Pet's images/ and annotations/ right in output_dir,
        VOC's VOCdevkit/ in output_dir."""
        fetched.append((url, hash_val))
        staging = tmp_path / "staging"
        if dataset == "pet" and not fetched[1:]:
            for sub in ("images", "annotations"):
                shutil.copytree(write_demo_pet(staging, images_per_breed=1, size=32) / sub, Path(output_dir) / sub)
        elif dataset == "voc":
            shutil.copytree(write_demo_voc(staging, num_images=2, size=32).parent, Path(output_dir) / "VOCdevkit")

    monkeypatch.setattr(monai.apps, "download_and_extract", fake_download_and_extract)
    check, archives = (check_pet, list(PET_ARCHIVES)) if dataset == "pet" else (check_voc, [VOC_ARCHIVE])
    with pytest.raises(FileNotFoundError, match="not found"):
        check(tmp_path, download="false")
    assert not fetched
    found = check(tmp_path, download=True)
    assert fetched == archives and found.is_dir()
    check(tmp_path, download=True)  # present now: nothing fetched again
    assert len(fetched) == len(archives)
