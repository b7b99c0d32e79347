# RefCOCO family in the REFER layout (LISA-style tree):
#   data/refer_seg/images/mscoco/images/train2014/*.jpg
#   data/refer_seg/images/saiapr_tc-12/*.jpg            (refclef)
#   data/refer_seg/{refcoco,refcoco+,refcocog,refclef}/{refs(unc|umd).p,instances.json}
#   data/refer_seg/grefcoco/{grefs(unc).json,instances.json}
data_root = 'data/refer_seg'
coco_prefix = dict(img_path='images/mscoco/images/train2014')
clef_prefix = dict(img_path='images/saiapr_tc-12')
