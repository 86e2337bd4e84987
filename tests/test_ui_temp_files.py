"""The app's temporary-file sweeper."""


def test_temp_sweeper_deletes_old_uploads_and_keeps_example_files(tmp_path):
    import gradio as gr

    from explorer.ui.temp_files import sweep_temp_files

    with gr.Blocks() as demo:
        image = gr.Image()
    folders = [tmp_path / f"hash{i}" for i in range(3)]
    files = []
    for folder in folders:
        folder.mkdir()
        files.append(folder / "photo.jpg")
        files[-1].write_bytes(b"x")
    demo.upload_file_set.update(str(f) for f in files)
    image.keep_in_cache = {str(files[2])}  # what Gradio keeps for examples
    assert sweep_temp_files(demo, ttl_s=3600) == 0 and all(f.exists() for f in files)  # young files stay
    assert sweep_temp_files(demo, ttl_s=-1) == 2
    assert not files[0].exists() and not folders[0].exists() and files[2].exists()
    assert str(files[0]) not in demo.upload_file_set


def test_downloads_get_a_folder_each_and_are_swept(tmp_path):
    from pathlib import Path

    from explorer.ui.temp_files import sweep_downloads, write_download

    first, second = (Path(write_download("answer.json", text, tmp_path)) for text in ("{}", "[]"))
    assert first.name == second.name == "answer.json" and first.parent != second.parent  # never the same file
    assert (first.read_text(), second.read_text()) == ("{}", "[]")
    assert sweep_downloads(3600, tmp_path) == 0 and first.exists()
    assert sweep_downloads(-1, tmp_path) == 2 and not first.parent.exists() and list(tmp_path.iterdir()) == []
