"""Size and sha256 of every file in the shared data folder, copied from its ``SOURCE.md`` tables.

Keys are paths relative to the data directory (``$TLCOURSE_DATA``).
:func:`tlcourse.data._paths.verified` checks a file against its entry once per process; a file that
is not listed is read unchecked. :data:`ORIGINS` names where each folder's files were copied from,
for the "re-copy" advice of :class:`~tlcourse.data.DataCorruptError`.
"""

from __future__ import annotations

# top-level folder of the data directory -> where its files come from (see that folder's SOURCE.md)
ORIGINS: dict[str, str] = {
    "ag_news_subset": "github.com/forest-snow/alps data/agnews",
    "glue_rte": "github.com/marcwww/nlu_eval data/RTE (GLUE)",
    "gutenberg_selection": "github.com/juletx/corpus-linguistics data/gutenberg",
    "omniglot": "github.com/brendenlake/omniglot python/",
    "pretrain_corpus": (
        "Project Gutenberg, English Wikipedia 2015, SGD, AMI, OneStopEnglish (see SOURCE.md)"
    ),
    "sentiment_labelled_sentences": (
        "github.com/shultzam/NN-text-classification (UCI Sentiment Labelled Sentences)"
    ),
    "sst2": "github.com/eyalbd2/Reproducing-AutoPrompt glue_data/SST-2 (GLUE)",
    "tinyshakespeare": "github.com/karpathy/char-rnn data/tinyshakespeare",
    "ud_pud_parallel": "github.com/UniversalDependencies UD_{English,German,Spanish,French}-PUD",
    "ud_treebanks": "github.com/UniversalDependencies (EWT train rebuilt, see SOURCE.md)",
    "wikitext2": "github.com/pytorch/examples word_language_model/data/wikitext-2",
    "word_embedding_eval": "gensim 4.3.3 test data and github.com/mrmechko/simcross",
}

# path relative to the data directory -> (size in bytes, sha256 hex digest)
CHECKSUMS: dict[str, tuple[int, str]] = {
    "ag_news_subset/LICENSE.alps-repo.txt": (
        1070,
        "e05c2e791b7aba247aeae3e9d38e474e53fc686a1407576ccfe8bc60d6b65315",
    ),
    "ag_news_subset/test.tsv": (
        1530104,
        "e4217edd939f618f24a42b0988c56ec3cddf656d8dc279b9afa443dd1ab6a1c1",
    ),
    "ag_news_subset/train_subset.tsv": (
        2030410,
        "7a0811e0006080bf4de17752c5466450ff3db778be71bc5bcf3c4e99b5f0803d",
    ),
    "glue_rte/dev.tsv": (90343, "80230dfa1347282e7b532b06a1004a76a710087541189bf874223ddf0e3819fb"),
    "glue_rte/test.tsv": (
        933969,
        "6e33f09b5c2bfd5fd5fde217070f3dd49e484e33b9752b5864cf36fc421a213f",
    ),
    "glue_rte/train.tsv": (
        846227,
        "81d25e323e1ab5b2ad7cd445f1a69db89f2b1c104f3e26915a9421aa4a5f4735",
    ),
    "gutenberg_selection/austen-emma.txt": (
        920017,
        "76a28c636265905bcf72712d80d1c6e773e55279b919b843825cb2770b99e59e",
    ),
    "gutenberg_selection/austen-persuasion.txt": (
        479538,
        "8e3cd75843eae6578c0b8f48350615ed653910b3f645e514391e07ba5eb2e40c",
    ),
    "gutenberg_selection/austen-sense.txt": (
        694241,
        "22327c09d537811b7f15006aaad69ad25d98b8c5f2a6fb0203ec13e9f3982d84",
    ),
    "gutenberg_selection/blake-poems.txt": (
        37615,
        "160dc526b20d661fa5b86b31dda98b1e869e6a6eadf258b99108d43ed09c961d",
    ),
    "gutenberg_selection/bryant-stories.txt": (
        252045,
        "957ece2242697855a68d6a0216a0c6443dab7ed2d17da3f86e379035b849fca2",
    ),
    "gutenberg_selection/burgess-busterbrown.txt": (
        85640,
        "4e4242a7c5c7e0703ea9b9daa1b6b61e7cafca902748a4be64d9ec9b55b09c6a",
    ),
    "gutenberg_selection/carroll-alice.txt": (
        150526,
        "b430be55ff4362199591ff6958afbcd0dc4e1a28d0d9c6796b780c207d7c8760",
    ),
    "gutenberg_selection/chesterton-ball.txt": (
        470295,
        "e21f058f0cbf7c14189c973006ba214b90c733d581ca0fc69b99e3d75b068445",
    ),
    "gutenberg_selection/chesterton-brown.txt": (
        414568,
        "db337dcffb50771b2415b69a2775d372578804e65f8fdec6e53c096b95d95e99",
    ),
    "gutenberg_selection/chesterton-thursday.txt": (
        333374,
        "10e1acb6c64ba4d2ca89697c7bf923798797f5c24f139b6e451b5b7d6d7482d0",
    ),
    "gutenberg_selection/edgeworth-parents.txt": (
        956476,
        "bd9bc2cfaadf7acbffa8dd63569041624a659cf753e5d8d31c7300c1c004f297",
    ),
    "gutenberg_selection/melville-moby_dick.txt": (
        1257667,
        "07fb87e563dbbe9523179e9ba2ec00dcd0e293641dbfd3db25d2f915430d3d8b",
    ),
    "gutenberg_selection/milton-paradise.txt": (
        472323,
        "85c5b1cfe49474f4c19c54b8f997b839f16253ed282a86c93d56542e196ece05",
    ),
    "gutenberg_selection/shakespeare-caesar.txt": (
        114399,
        "36b5d937cbfe110de7720277d819e1cc41cf9ddb053b97a26d9df67f31c94200",
    ),
    "gutenberg_selection/shakespeare-hamlet.txt": (
        166144,
        "6d06298ee6448bd48a2250ee00a4a2d9a9e4487a46c75ee22271ccfc0cf3d6ef",
    ),
    "gutenberg_selection/shakespeare-macbeth.txt": (
        102744,
        "444ea649552ad86fbb74b0926f8a3f888264a04e30308191afa544f51e607976",
    ),
    "gutenberg_selection/whitman-leaves.txt": (
        722146,
        "802545502fcc24ef7ad48ec1e61db70fd7b4002662cf6d0a05a4619052cae83d",
    ),
    "omniglot/LICENSE": (1080, "2efb425d9850e7bce985f151dc2ee1f4485e926a3582e08fd879cd28eb0388f5"),
    "omniglot/all_runs.zip": (
        352787,
        "437c1eeab0af8484112e1b4cc0f3d541ec727f7c47b9b202da738af9dfd6c325",
    ),
    "omniglot/images_background_small1.zip": (
        1319022,
        "f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4",
    ),
    "omniglot/images_background_small2.zip": (
        1580917,
        "3ccaa407515a8778e5d0861875af38b17e418f301ad5bb3b5a6b65d901a41c7f",
    ),
    "pretrain_corpus/ami_meetings.txt": (
        5032038,
        "2349b39da36ae077539fde3cd04b11482da2c024fff0f7148e386401c369014a",
    ),
    "pretrain_corpus/enwiki_2015.txt": (
        39380400,
        "ec67195a0c4031c6bf9a14108f8edc879c57d494e23878c8383fa030384e57e2",
    ),
    "pretrain_corpus/gutenberg_books.manifest.tsv": (
        29955,
        "764d277ce9de1ec206909ce33385f2a75337c4d1f7d3133b3f19f29cf96bb7a2",
    ),
    "pretrain_corpus/gutenberg_books.txt": (
        51490895,
        "78fa26f4ef10fbf9c84ad12730621975c64e4f34ec9f644a57484b4e950d4717",
    ),
    "pretrain_corpus/onestopenglish.txt": (
        2265196,
        "8d1e8757ec91624fd80517dc4e65bd52e8401311452cc07e2dbacd2009399a72",
    ),
    "pretrain_corpus/sgd_dialogues.txt": (
        15902026,
        "af60494541f2ba5d77ddb07cc182ef5c1d4ae2c3f4370cd7fd3cc05559c42fdd",
    ),
    "sentiment_labelled_sentences/amazon_cells_labelled.txt": (
        58226,
        "47003fc0a0d4840b00e96e715b6189bad09e7443a3da41c4cbe12ffc79f86ae3",
    ),
    "sentiment_labelled_sentences/imdb_labelled.txt": (
        85270,
        "1dfdac33954f1f86106a3a97cba11c46cd96c10b70b51305d5afe90b2c60f38e",
    ),
    "sentiment_labelled_sentences/readme.txt": (
        1070,
        "736c26aa54e3614459e50314ece0698051f0923d108ed53938dcb1aa0483bfd4",
    ),
    "sentiment_labelled_sentences/yelp_labelled.txt": (
        61320,
        "c76468b7b5c6e56a0804d728345c5f84aa2142ddb214420f61cc9cfd4c00d2ea",
    ),
    "sst2/dev.tsv": (94931, "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0"),
    "sst2/train.tsv": (3806081, "48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1"),
    "tinyshakespeare/input.txt": (
        1115394,
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    ),
    "ud_pud_parallel/UD_English-PUD/LICENSE.txt": (
        19556,
        "b278eb53fe50b8bb7fa0d90fb8536c35fdcaa80f9d63812cb51db539555d2a89",
    ),
    "ud_pud_parallel/UD_English-PUD/README.md": (
        6986,
        "9558eb70a6565a40e2ecf06d0f38c9f6117de0f0f8bc5021805bdce51ee0d67f",
    ),
    "ud_pud_parallel/UD_English-PUD/en_pud-ud-test.conllu": (
        1386858,
        "c80584f2bc2b31d5bada78a1136f9feec7ac49e5e18898db02dea434b5b8f0aa",
    ),
    "ud_pud_parallel/UD_French-PUD/LICENSE.txt": (
        19556,
        "b278eb53fe50b8bb7fa0d90fb8536c35fdcaa80f9d63812cb51db539555d2a89",
    ),
    "ud_pud_parallel/UD_French-PUD/README.md": (
        6052,
        "d76e6467a48f14e291d5006c5fb709243045d901a2f349dfcc15bcc89dc70abd",
    ),
    "ud_pud_parallel/UD_French-PUD/fr_pud-ud-test.conllu": (
        1820910,
        "793540702db111d2bfe04f846edddb23e7a2a432294fe17cb612dd795fb0301f",
    ),
    "ud_pud_parallel/UD_German-PUD/LICENSE.txt": (
        19556,
        "b278eb53fe50b8bb7fa0d90fb8536c35fdcaa80f9d63812cb51db539555d2a89",
    ),
    "ud_pud_parallel/UD_German-PUD/README.md": (
        5904,
        "34f2708e3efb935e5cf37c74c82c0dda9c3a417ca3ead0ba612673a7de2a36d5",
    ),
    "ud_pud_parallel/UD_German-PUD/de_pud-ud-test.conllu": (
        1717993,
        "a530bdb50349bbd7c13706b6a759a9d73e8f514fff41fbf27149e914b0c3e723",
    ),
    "ud_pud_parallel/UD_Spanish-PUD/LICENSE.txt": (
        19556,
        "b278eb53fe50b8bb7fa0d90fb8536c35fdcaa80f9d63812cb51db539555d2a89",
    ),
    "ud_pud_parallel/UD_Spanish-PUD/README.md": (
        6805,
        "e0f187331cb5c0a4b8afc4b209dd6b273eb9f98fe2944adaea45967987b7c668",
    ),
    "ud_pud_parallel/UD_Spanish-PUD/es_pud-ud-test.conllu": (
        1730033,
        "48a7b5c7f409100b24eba90c7397e01f6fecaaf3207315a9a1bda029f77e98d3",
    ),
    "ud_pud_parallel/parallel_text_en_de_es_fr.tsv": (
        509136,
        "a9c5d932867e726626e27c85e7d267734b05dfeb9925107562ca09c6bcceeed2",
    ),
    "ud_treebanks/UD_English-EWT/LICENSE.txt": (
        20014,
        "b3d1b0f4c6ae151f7eb78738f46ebd5ee140f8a7f76501ba26af123140d35ae7",
    ),
    "ud_treebanks/UD_English-EWT/README.md": (
        18569,
        "099677d6938869b4e855e6ec6548fc24ffeb5fce90e1cd985847f7049664f29e",
    ),
    "ud_treebanks/UD_English-EWT/en_ewt-ud-dev.conllu": (
        1805545,
        "531a54ff90d6ab12201c5a50c3e78e6ddac4de69abc4bce5d275d3cd29efe2b6",
    ),
    "ud_treebanks/UD_English-EWT/en_ewt-ud-test.conllu": (
        1804515,
        "e266e515a0a7547657ed3d90d9ba46487d6bd251f27ad4269d4e8a427c8555cd",
    ),
    "ud_treebanks/UD_English-EWT/en_ewt-ud-train.conllu": (
        14203025,
        "3fb78e2b55482c8ee00caa653af436c88c9e5bc9a73ce26e4ae3ddc79d2b7e7b",
    ),
    "ud_treebanks/UD_English-EWT/reconstruction/files.train": (
        19037,
        "687cfebb27a1418bb0070099aecc77e3754f74ba57ad175d32875f4e0dd80f3b",
    ),
    "ud_treebanks/UD_English-EWT/stats.xml": (
        12850,
        "1e1e44c4f97b181fc775b42f819895955db4bbda0eaabee01cb590ccf00e89b4",
    ),
    "ud_treebanks/UD_French-GSD/LICENSE.txt": (
        202,
        "899b1804a12ebc090b96339614eede1b64b686721b650a71430b55b5235f7f79",
    ),
    "ud_treebanks/UD_French-GSD/README.md": (
        8027,
        "2ed6a417a46094388a7d67d3e2fde76b98d1c14b9728466374904c8a02872179",
    ),
    "ud_treebanks/UD_French-GSD/fr_gsd-ud-dev.conllu": (
        2316421,
        "3e7531b645e5bd6fe37bb619cdd8292e87f5937e64cd8627b4094324eb830e6b",
    ),
    "ud_treebanks/UD_French-GSD/fr_gsd-ud-test.conllu": (
        652793,
        "5d1743c7a9ce2908943d4a430ed9a77755e2a8d7e32d42ee0f1d6a0b528f0be8",
    ),
    "ud_treebanks/UD_French-GSD/stats.xml": (
        12256,
        "caccd03a881f39672f3f3308dc1196244054c1f70d586e7cecbaa44b8c8a763a",
    ),
    "ud_treebanks/UD_German-GSD/LICENSE.txt": (
        202,
        "899b1804a12ebc090b96339614eede1b64b686721b650a71430b55b5235f7f79",
    ),
    "ud_treebanks/UD_German-GSD/README.md": (
        9992,
        "bc1ded4c26d92f2f8df08ef093f94ccf006e8b6f65ab8e4244e1ef6e7d52f09b",
    ),
    "ud_treebanks/UD_German-GSD/de_gsd-ud-dev.conllu": (
        904804,
        "00431f2624cbbf66796c097a9303bbc8f8e8ca88ef35c4c5664aa396b2d674c9",
    ),
    "ud_treebanks/UD_German-GSD/de_gsd-ud-test.conllu": (
        1207783,
        "bceb8e867ba3ee7f1449d44fb31538d63a514f07e6763e7d9a5ffe794407bed4",
    ),
    "ud_treebanks/UD_German-GSD/stats.xml": (
        12152,
        "13be293871b67a0323f97816f89c5ec4bf07212223afc7764a461cb6e4bcd894",
    ),
    "ud_treebanks/UD_Japanese-GSD/LICENSE.txt": (
        202,
        "899b1804a12ebc090b96339614eede1b64b686721b650a71430b55b5235f7f79",
    ),
    "ud_treebanks/UD_Japanese-GSD/README.md": (
        8905,
        "5256741c40fb99fc673967bcbc35c28d09666fb8cee992ee7c20d553a1c0b380",
    ),
    "ud_treebanks/UD_Japanese-GSD/ja_gsd-ud-dev.conllu": (
        2961591,
        "18d266e29336ef619787a928d89d20f2e64188be70d5b37829e3aadc5bb6b841",
    ),
    "ud_treebanks/UD_Japanese-GSD/ja_gsd-ud-test.conllu": (
        3111982,
        "5f50ee6ed45c7ebda3787e593eaf5e9a225f25e53f6b4b32df778031862c843f",
    ),
    "ud_treebanks/UD_Japanese-GSD/stats.xml": (
        4182,
        "deb0bb5ff4285ff20e009bc63811e8567ef967123ce286ca6557289d926a957c",
    ),
    "ud_treebanks/UD_Spanish-GSD/LICENSE.txt": (
        202,
        "899b1804a12ebc090b96339614eede1b64b686721b650a71430b55b5235f7f79",
    ),
    "ud_treebanks/UD_Spanish-GSD/README.md": (
        6410,
        "3ff401cda814261d9189dea898c5132fa2fb6c003da71cd7f091b2846abf19ea",
    ),
    "ud_treebanks/UD_Spanish-GSD/es_gsd-ud-dev.conllu": (
        2314519,
        "d5018974cb6a4adb03435f76ac4914a388f4fc763b35b6c4a6a2dc27874b0dff",
    ),
    "ud_treebanks/UD_Spanish-GSD/es_gsd-ud-test.conllu": (
        755576,
        "37612cb7cc13eab62e6f95b06504a31f252ecc56acb52a06d142bf872318b872",
    ),
    "ud_treebanks/UD_Spanish-GSD/stats.xml": (
        13034,
        "732ba37caf83d60de478ef35b9f0bc1406f683166aebd90ce24ecf47e9605dcc",
    ),
    "wikitext2/README": (159, "ed96062abea03d4f4e8ca80f0caad8b07ec59687b8064319c7ee6f6d900b6286"),
    "wikitext2/test.txt": (
        1256449,
        "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0",
    ),
    "wikitext2/valid.txt": (
        1121681,
        "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8",
    ),
    "word_embedding_eval/MEN/MEN_dataset_lemma_form.dev": (
        53825,
        "56ef0c18290989c095466de349d7754102f7f6b20d2b9386d179b1945a4436fa",
    ),
    "word_embedding_eval/MEN/MEN_dataset_lemma_form.test": (
        26804,
        "d518c0cea13272d51a72a184899bde78d30f8a0b9839cb9ee75a5cfd180856df",
    ),
    "word_embedding_eval/MEN/MEN_dataset_lemma_form_full": (
        80611,
        "ea3441417fea4be40916422957cddce912dd7a8bb8f81d8ded532a667e80d6eb",
    ),
    "word_embedding_eval/MEN/MEN_dataset_natural_form_full": (
        69876,
        "87a5b7229e6cf32426063da921e83031b9efeab3101d4413eaa3f44fcbce3a45",
    ),
    "word_embedding_eval/MEN/instructions.txt": (
        924,
        "477383b389403f92cea022a693ca6eb69daab81ce27b151be0888bf79b0f49b4",
    ),
    "word_embedding_eval/MEN/licence.txt": (
        809,
        "d8d7416e8adbba39f5eeabf2876a98293c4ac2ce2f25f7446d6a435f8e7b67b6",
    ),
    "word_embedding_eval/SimLex-999/README.txt": (
        2766,
        "9a5137f54986b4ef42099225885f086da60a55f387db01e661c3a59679be9131",
    ),
    "word_embedding_eval/SimLex-999/SimLex-999.txt": (
        44050,
        "ca00ff8515a36cde32d13c2b83def23f5a167b67db93ebfcfb7dae039ba22c0b",
    ),
    "word_embedding_eval/google_analogy/questions-words.shared80.txt": (
        483221,
        "00014b3fc41df262fd166aa20773dc335694be8f63c1994854186bd27a73fa4a",
    ),
    "word_embedding_eval/wordsim353/combined.tab": (
        7433,
        "1edf400ed472e796b3be562cf7970b10d749a07874a96ddc77e75fd1006b446c",
    ),
    "word_embedding_eval/wordsim353/instructions.txt": (
        1908,
        "276722cafef27972548bc068af11a60523ce55c07660b3aee4dbe428755551d9",
    ),
}
