# The embedded synthetic referring dataset, written in the REFER layout by
#   python tools/dataset_converters/generate_synthetic_refer.py --out data/synthetic
# and read by the same RefCOCODataset class as real RefCOCO.
data_root = 'data/synthetic'
dataset_type = 'RefCOCODataset'
dataset_name = 'synthrefcoco'
img_prefix = 'images/synthetic'
