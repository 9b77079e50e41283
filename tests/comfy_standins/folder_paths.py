"""Stand-in for ComfyUI's folder_paths: model folder registry under ``models_dir``."""
import os

models_dir = os.path.join(os.getcwd(), "models")
input_directory = os.path.join(os.getcwd(), "input")
output_directory = os.path.join(os.getcwd(), "output")
folder_names_and_paths: dict = {}


def add_model_folder_path(folder_name, full_folder_path, is_default=False):
    paths, exts = folder_names_and_paths.setdefault(folder_name, ([], set()))
    if full_folder_path not in paths:
        paths.insert(0, full_folder_path) if is_default else paths.append(full_folder_path)


def get_folder_paths(folder_name):
    return list(folder_names_and_paths.get(folder_name, ([], set()))[0])


def get_input_directory():
    return input_directory


def get_output_directory():
    return output_directory
