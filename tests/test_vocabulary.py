"""The vocabulary file: line k of the glosses is class k; comments and blank lines never shift the ids."""

import pytest

from signspot.formats.vocabulary import (
    UnknownGlossError,
    Vocabulary,
    VocabularyError,
    class_ids,
    gloss_of,
    load_vocabulary,
)


def test_line_k_of_the_glosses_is_class_k(tmp_path):
    path = tmp_path / "vocabulary.txt"
    path.write_text("# greetings\n\nHELLO\n   GOODBYE  \n\t# more\nNUMBER#1\nTHANK YOU\n\n", encoding="utf-8")
    vocabulary = load_vocabulary(path)
    assert vocabulary.glosses == ("HELLO", "GOODBYE", "NUMBER#1", "THANK YOU")  # '#' inside a gloss is kept
    assert vocabulary.names() == {0: "HELLO", 1: "GOODBYE", 2: "NUMBER#1", 3: "THANK YOU"}
    assert [vocabulary.class_id(g) for g in ("HELLO", " GOODBYE ", "THANK YOU", "hello", "5")] == [0, 1, 3, None, None]
    assert vocabulary.gloss(2) == "NUMBER#1" and vocabulary.source == str(path)
    with pytest.raises(VocabularyError, match="class 4 has no gloss"):
        vocabulary.gloss(4)
    path.write_text("ÉCOLE\r\nMAISON\r\n", encoding="utf-8")  # Windows line ends, non-ASCII glosses
    assert load_vocabulary(path).glosses == ("ÉCOLE", "MAISON")


def test_broken_vocabulary_files_are_named(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("A\nB\n# c\nA\nC\n\nB\nA\n")
    with pytest.raises(VocabularyError, match=r"v.txt: each gloss may appear once: 'A' on lines 1, 4, 8; "
                                              r"'B' on lines 2, 7$"):
        load_vocabulary(path)
    path.write_text("# nothing\n\n")
    with pytest.raises(VocabularyError, match="holds no glosses"):
        load_vocabulary(path)
    path.write_bytes(bytes(range(256)))
    with pytest.raises(VocabularyError, match="not a UTF-8 text file"):
        load_vocabulary(path)
    with pytest.raises(FileNotFoundError, match="missing.txt: vocabulary file not found"):
        load_vocabulary(tmp_path / "missing.txt")
    with pytest.raises(VocabularyError, match="more than once: 'A'"):
        Vocabulary(["A", "B", "A"])


def test_without_a_vocabulary_a_class_is_its_id():
    assert gloss_of(7, None) == "7"
    assert gloss_of(1, Vocabulary(["A", "B"])) == "B"
    assert class_ids({"f": ["3", " 12 ", "0"]}, None, "here") == {"f": [3, 12, 0]}
    with pytest.raises(UnknownGlossError, match=r"here: 3 annotation value\(s\) are not class ids: 'A' x2 \(f, g\), "
                                                r"'-1' x1 \(g\)"):
        class_ids({"f": ["A", "1"], "g": ["-1", "A"]}, None, "here")


def test_every_unknown_gloss_is_listed_with_its_count():
    vocabulary = Vocabulary(["HELLO", "CAT"], "v.txt")
    assert class_ids({"a.eaf": ["CAT", "HELLO"]}, vocabulary, "x") == {"a.eaf": [1, 0]}
    with pytest.raises(UnknownGlossError) as info:
        class_ids({"d/a.eaf": ["DOG", "CAT", "", "COW", "DOG"], "d/b.eaf": ["DOG", "COW", "HELO"]}, vocabulary, "d")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("d: 7 annotation value(s) are not in the vocabulary v.txt: 'DOG' x3 (a.eaf, b.eaf), "
                              "'COW' x2 (a.eaf, b.eaf), '' x1 (a.eaf), 'HELO' x1 (b.eaf). Add each missing gloss to "
                              "v.txt")


def test_the_synthetic_dataset_ships_its_vocabulary(tmp_path):
    import json

    from signspot.datasets.synthetic import generate_dataset

    settings = dict(classes=5, videos_per_split=(3, 2, 2), seconds=6.0, size=(64, 64), signers=2,
                    test_only_signers=1, workers=1, progress=False)
    generate_dataset(tmp_path / "a", seed=0, **settings)
    generate_dataset(tmp_path / "b", seed=1, **settings)
    vocabulary = load_vocabulary(tmp_path / "a" / "vocabulary.txt")
    classes = json.loads((tmp_path / "a" / "stats.json").read_text())["classes"]
    assert len(vocabulary) == 5
    for gloss, cls in zip(vocabulary.glosses, classes):
        assert gloss == f"{cls['path']}-{cls['place']}-{cls['shape']}-{cls['hands']}".upper()
    # the classes depend on their number only, so every seed gives the same file
    assert (tmp_path / "a" / "vocabulary.txt").read_bytes() == (tmp_path / "b" / "vocabulary.txt").read_bytes()


def test_visualize_labels_signs_with_the_vocabulary(tmp_path, monkeypatch):
    import signspot.cli.visualize as visualize
    from signspot.formats.gt import save_intervals_eaf

    (tmp_path / "v.txt").write_text("HELLO\nCAT\nDOG\n")
    save_intervals_eaf({"a": [[2, 0, 400]], "b": [[1, 40, 800]]}, tmp_path / "eaf", tier="signs",
                       vocabulary=load_vocabulary(tmp_path / "v.txt"))
    from tests.eaf_schema import schema_problems

    assert [schema_problems(p) for p in sorted((tmp_path / "eaf").glob("*.eaf"))] == [[], []]
    seen = []
    monkeypatch.setattr(visualize, "plot_video_timeline", lambda path, video, **kw: seen.append(kw) or path)
    monkeypatch.setattr(visualize, "plot_class_f1", lambda path, report, names: seen.append(names) or path)
    visualize.main(gt=str(tmp_path / "eaf"), pred=str(tmp_path / "eaf"), tier="signs",
                   vocabulary=str(tmp_path / "v.txt"), out=str(tmp_path / "plots"))
    assert seen[0]["gt"] == [[2, 0, 400]] and seen[0]["class_names"] == {0: "HELLO", 1: "CAT", 2: "DOG"}
    assert seen[-1] == {0: "HELLO", 1: "CAT", 2: "DOG"}
    (tmp_path / "names.json").write_text('["x", "y"]')  # the older label files still work
    with pytest.raises(SystemExit, match="--vocabulary or --class-names, not both"):
        visualize.run(["--gt", str(tmp_path / "eaf"), "--tier", "signs", "--vocabulary", str(tmp_path / "v.txt"),
                       "--class-names", str(tmp_path / "names.json")])
