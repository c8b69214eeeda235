"""The dataset-family registry: VG150 and Open Images V6 produce what they produced before it (every loader,
statistics and evaluation output of ``family_outputs`` on SynthVG in both layouts, against the digests that
the code before the registry, commit e10229a, computed with the same ``family_outputs``:
``PYTHONPATH=<that checkout> python tests/family_outputs.py`` prints them); names resolve to exactly one
family; an unknown name lists the known ones; a registered family is all the code consults."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from family_outputs import (OI_VAL_IMAGES, SYNTHVG_OPTIONS, DeterministicRelationModel, family_output_digests,
                            layout_config)
from rebalance_hca.data import (FAMILIES, UnknownDatasetError, build_dataset, dataset_paths, family_of,
                                get_dataset_statistics, registry)
from rebalance_hca.data.build import train_vocabulary
from rebalance_hca.data.family import SPLITS
from rebalance_hca.data.synthetic import write_synthvg_oi
from rebalance_hca.data.vg import VG150Family
from rebalance_hca.engine.relation_runs import relation_validator
from rebalance_hca.evaluation import SGBProtocol
from rebalance_hca.utils.cli import UserInputError, user_errors

PINNED_DIGESTS = {
    "vg150": {
        "train.index": "4ccd6149e1899ff3c0ac67010ca4c68e2356b938dc7244d0090f6e01165b0dd8",
        "train.evaluation_targets": "a23039bce19cb735fa3436cf3255e937dd09f803244456952ddc9070607b6ddd",
        "train.training_targets": "414c0aecb937cb6ab0bc888c20ded80254e33676f034bae6d188b6db142540df",
        "val.index": "ccd2b5383a94ecc78582686abd28fa1f7d6b3036d2b10a26a61a421c39da7975",
        "val.evaluation_targets": "a16bd42221311a86055fd05174dbbe000b83bd0cad07f1a7540e4ae93fa64e08",
        "val.training_targets": "24c6c18f3671b065378aa81f5238d97542c677205356a3e3835143f8ad2e29ec",
        "test.index": "736724bc7b6a3347c3145c6785da0ec83f5827e30c1f36501b78ab2f6b25c2ca",
        "test.evaluation_targets": "8d99edb864ac80f6519cf56ffcfacee38113161fe631cbe279d9fa76e87491a2",
        "test.training_targets": "b20ac08ed0455048625af7801594b2f534e2925646feed68d7c179ab738feed5",
        "train.stage2_index": "3c0fce4448318ac44ffc0cf738953f78a30b4815863c1f7a9a50947406ca90b2",
        "vocabulary": "59e3d52ce7749217f15f5dece3e61fd37b79dbca6a15624e0cadf74670f7d776",
        "statistics": "6620faa5411ce8dbad2f96ec7002c68ec5fa89742660d4469c5b6974c7092bf7",
        "loader.train": "e651e128aa531ea893f6fc261a19785722bc3144e7034ed9fee46107c321caac",
        "loader.test": "a6ea86cc80b7601d65127ca66c3afc894d1185248bd729b2df26f5ca0906b906",
        "test_run": "55858af6af106914e3f37a0ff0c2fc5db0ba74afa90d9168ac683ecdbe0730a7",
        "validation": "c1e39d0e6acd75f8ad971ecdda9e7cffa4daffb42280918f2db6994d0b688c38",
        "evaluate_predictions": "d6705b55428a8a31b01efa4fecd34c3a3b7240a0284bc1b6a991324f73186629",
    },
    "oiv6": {
        "train.index": "f76c46acbcd6fe42a0a9fc8dc94ac726dc5d41c1485dcf335f15bb69007ec36a",
        "train.evaluation_targets": "4ee36b0347aac70fdf8bafac560123b908221662e3f2e3811f7af1e4deec98aa",
        "train.training_targets": "87f6152da5d2bebd1b7e5e385d7d5d247602a34f200c32945afed8fa4e8c660b",
        "val.index": "0aa0896195e9d7310d79fdc72ea0d2d0717a6b9622ab0786dadec453af48dd3b",
        "val.evaluation_targets": "a865f99fc495af4b0361e121d10e1d6c182a5fa8190d11afdeebaac9ad565240",
        "val.training_targets": "9877a74444cc8c3703ccb9cfd17ef69688791f1d564abc5cedda6846ed77b880",
        "test.index": "b8371977c95282f2a1c37f82414fbf063c6d34bdb16a83ae0bc76291161aade8",
        "test.evaluation_targets": "d6e954b29faa9e8b31d95c26bf102496595e2e6d0f9720718868d89972c6df99",
        "test.training_targets": "901a103a7b121af0cff823339baf9629bf6bc5b0fddadef7952efbb2b625f181",
        "train.stage2_index": "4a37cd871784b372f7c85859c9d7881563ddecfd49c86771c0ae45a520f88f8e",
        "vocabulary": "44af64b99c4a918edec9f9e0a1d218b9f0bc380e76a07d35e609822eabb910ab",
        "statistics": "1f0b04c8af5d18a5e72682a25fe7789a6e5247d74a0aa3eb2dfb6759598078fd",
        "loader.train": "1be01c66a6b441a6e740635b6efc65e7656d1bc4c75b2f46b4b58052c1f28968",
        "loader.test": "42fd0ff22a4870883ed8916ad06d977c06d33f3cbee06f06412e69b6bc9f712a",
        "test_run": "265e73d4328e942799463df43bc1d80f6791dc01227e61783cd6c82ae409adee",
        "validation": "02fac829dd91e8599c483ca56f33d2e92ba7c42f93a551e689a32cf11cb35cf3",
        "evaluate_predictions": "addd3eecf65114622aac7cccbc322ea33dd23c3924a1ffe192bbe095403e1573",
    },
}


@pytest.fixture(scope="module")
def synthvg_in_layout(tiny_synthvg, tmp_path_factory):
    """layout -> data root of SynthVG's 60 seed-0 scenes (the VG150 one is the shared ``tiny_synthvg``)."""
    oi_root = str(tmp_path_factory.mktemp("synthvg_oi_pinned"))
    write_synthvg_oi(oi_root, SYNTHVG_OPTIONS, num_val_images=OI_VAL_IMAGES)
    return {"vg150": tiny_synthvg, "oiv6": oi_root}


@pytest.mark.parametrize("layout", sorted(PINNED_DIGESTS))
def test_outputs_are_those_of_the_code_before_the_registry(layout, synthvg_in_layout, tmp_path):
    digests = family_output_digests(layout, synthvg_in_layout[layout], str(tmp_path))
    assert sorted(digests) == sorted(PINNED_DIGESTS[layout])
    changed = sorted(name for name, digest in digests.items() if digest != PINNED_DIGESTS[layout][name])
    assert not changed, f"outputs that differ from the pinned ones: {changed}"


def test_every_name_of_every_family_resolves_to_that_family_and_a_split(tmp_path):
    for family in FAMILIES:
        for name in family.dataset_names():
            assert family_of(name) is family
            paths = dataset_paths(name, str(tmp_path))
            assert paths.split in SPLITS and name.endswith(paths.split)
    assert [family.name for family in FAMILIES] == ["VG150", "Open Images V6", "GQA-200", "scene-graph JSON"]


def test_an_unknown_name_lists_every_family_and_its_names_in_one_line(tiny_synthvg, tmp_path):
    cfg = layout_config("vg150", tiny_synthvg, str(tmp_path), "DATASETS.TEST", "('openimage_v4_test',)")
    with pytest.raises(UserInputError) as raised, user_errors("building the splits"):
        build_dataset(cfg, "test")
    message = str(raised.value)
    assert isinstance(raised.value.__cause__, UnknownDatasetError) and "\n" not in message
    assert message.startswith("building the splits: unknown dataset name 'openimage_v4_test'; known names: VG150: "
                              "VG_stanford_filtered_with_attribute_train, VG_stanford_filtered_with_attribute_val")
    assert "; Open Images V6: openimage_v6_train, openimage_v6_val, openimage_v6_test" in message


def test_a_name_claimed_by_two_families_is_refused(monkeypatch):
    monkeypatch.setattr(registry, "FAMILIES", (VG150Family(), VG150Family()))
    with pytest.raises(RuntimeError, match="claimed by several families: VG150, VG150"):
        family_of("VG_stanford_filtered_with_attribute_train")


class RenamedVG(VG150Family):
    """VG150's files under other names, with another validation metric: a family that only registration
    makes known."""

    name = "Renamed VG"
    protocol = SGBProtocol(validation_metrics=("mR@100", "R@100"))

    def dataset_names(self):
        return tuple(f"renamed_{split}" for split in SPLITS)

    def paths(self, name, data_root):
        return super().paths("VG_stanford_filtered_with_attribute_" + name[len("renamed_"):], data_root)


def test_a_registered_family_is_what_the_data_layer_and_the_engine_consult(tiny_synthvg, tmp_path, monkeypatch,
                                                                             caplog):
    monkeypatch.setattr(registry, "FAMILIES", (*FAMILIES, RenamedVG()))
    names = ["DATASETS.TRAIN", "('renamed_train',)", "DATASETS.VAL", "('renamed_val',)", "DATASETS.TEST",
             "('renamed_test',)"]
    renamed = layout_config("vg150", tiny_synthvg, str(tmp_path / "renamed"), *names)
    original = layout_config("vg150", tiny_synthvg, str(tmp_path / "original"))
    for mode in SPLITS:
        ours, theirs = build_dataset(renamed, mode), build_dataset(original, mode)
        assert type(ours).__name__ == "VGDataset"
        np.testing.assert_array_equal(ours.index.relations, theirs.index.relations)
    assert train_vocabulary(renamed).predicate_order == train_vocabulary(original).predicate_order
    np.testing.assert_array_equal(get_dataset_statistics(renamed).fg_matrix,
                                  get_dataset_statistics(original).fg_matrix)
    assert os.listdir(tmp_path / "renamed") == ["renamed_train_statistics.cache"]
    caplog.set_level("INFO")
    model = DeterministicRelationModel(renamed.MODEL.ROI_RELATION_HEAD.NUM_CLASSES)
    metric = relation_validator(renamed, False, torch.device("cpu"))(model)
    assert f"Validation mR@100 {metric:.4f}  R@100 " in caplog.text
