from lookalike.index.choose import EXACT_MAX_ITEMS, choose_index

GB = 2**30


def test_small_catalogs_get_exact_search_and_the_demo_catalog_a_graph():
    assert choose_index(10_000, 128, 2 * GB).key == "Flat"
    assert choose_index(EXACT_MAX_ITEMS, 128, 2 * GB).key == "Flat"
    assert choose_index(60_000, 128, 2 * GB).key == "HNSW32"


def test_large_catalogs_get_hnsw_within_budget():
    choice = choose_index(1_000_000, 128, 2 * GB)
    assert choice.key.startswith("HNSW")
    assert choice.bytes_per_item <= 1024
    assert 1_000_000 * choice.bytes_per_item <= 2 * GB


def test_tight_budget_falls_back_to_compressed_ivf_pq():
    choice = choose_index(1_000_000, 128, 100 * 2**20)
    assert choice.key.startswith("IVF") and ",PQ" in choice.key
    assert 1_000_000 * choice.bytes_per_item <= 100 * 2**20


def test_exact_is_refused_when_it_does_not_fit_the_budget():
    assert choose_index(15_000, 128, 1 * 2**20).key != "Flat"


def test_choice_is_a_pure_function():
    assert choose_index(123_456, 64, GB) == choose_index(123_456, 64, GB)


def test_too_few_items_to_train_a_compressed_index_stay_exact():
    assert choose_index(5_000, 128, 1024).key == "Flat"
